"""The operator hides credentials in URLs exactly as the dataset worker does."""

from __future__ import annotations

import pytest

from kubearts.redact import has_credentials, redact_url
from kubearts_dataset.redact import redact_url as worker_redact_url

URLS = [
    ("https://host/data.tar.gz", False),
    ("http://user:s3cret@host:8080/data.tar.gz", True),
    ("https://TOKEN123@host/data.zip", True),
    ("https://b.s3.amazonaws.com/d.tgz?X-Amz-Signature=abc&X-Amz-Expires=60", True),
    ("https://host/d.tgz?sig=xyz&v=1", True),
    ("https://host/d.tgz?version=2", False),
    ("s3://bucket/prefix", False),
]


@pytest.mark.parametrize(("url", "secret"), URLS, ids=[u for u, _ in URLS])
def test_secrets_are_hidden_like_the_worker_hides_them(url: str, secret: bool) -> None:
    shown = redact_url(url)
    assert shown == worker_redact_url(url)
    assert has_credentials(url) is secret
    for hidden in ("s3cret", "TOKEN123", "abc", "xyz"):
        assert hidden not in shown
    assert (shown != url) is secret
