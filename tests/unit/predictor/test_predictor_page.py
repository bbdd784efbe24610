"""The predict page in a real browser: Debian's chromium, driven by playwright."""

from __future__ import annotations

import shutil

import requests
from playwright.sync_api import sync_playwright
from predictor_helpers import Server, png


def test_predict_page_shows_the_top_label(server: Server) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: run `make system-deps` (Debian's chromium package)"
    image = png((30, 160, 220))
    expected = requests.post(
        f"{server.url}/", files=[("images", ("a.png", image, "image/png"))]
    ).json()
    html = requests.get(f"{server.url}/")
    assert html.status_code == 200
    # Self-contained: no script, style sheet or font from anywhere else.
    assert "<script src" not in html.text
    assert "<link" not in html.text
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/")
            page.set_input_files(
                "#file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": image}]
            )
            page.wait_for_selector("#scores .row", timeout=30_000)
            assert page.text_content("#predicted") == expected["predicted_label"]
            rows = page.locator("#scores .row")
            assert rows.count() == 5
            assert rows.nth(0).text_content().startswith(expected["scores"][0][0])
            assert "CPUExecutionProvider" in (page.text_content("#status") or "")
        finally:
            browser.close()
