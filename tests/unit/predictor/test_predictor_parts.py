"""The predictor's pure parts: CPU quota, the compact result, preprocessing, batching."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kubearts_predictor import preprocess, resources
from kubearts_predictor.batching import Batcher
from kubearts_predictor.result import compact


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000", "cpu/cpu.cfs_period_us": "100000"}, 2.0),
        ({"cpu,cpuacct/cpu.cfs_quota_us": "-1", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, None),
        ({}, None),
    ],
    ids=["v2-quota", "v2-max", "v1-quota", "v1-unlimited", "none"],
)
def test_cpu_quota(tmp_path: Path, files: dict[str, str], expected: float | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert resources.cpu_quota(tmp_path) == expected


def test_threads_round_the_quota_up(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("50000 100000")
    assert resources.usable_cpus(tmp_path) == 1


def test_compact_result_fits_the_termination_log() -> None:
    document = {"status": "Failed", "reason": "ModelLoadFailed", "message": "é" * 5000}
    text = compact(document)
    assert len(text.encode()) <= 4096
    data = json.loads(text)
    assert data["reason"] == "ModelLoadFailed"
    assert data["truncated"] is True


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB"])
def test_decode_gives_rgb_at_the_model_size(mode: str) -> None:
    buffer = io.BytesIO()
    Image.new(mode, (50, 20)).save(buffer, format="PNG")
    pixels = preprocess.decode(buffer.getvalue(), (32, 24), 10_000)
    assert pixels.shape == (32, 24, 3)
    assert pixels.dtype == np.uint8


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((375, 500), (224, 224)),
        ((30, 40), (32, 32)),
        ((20, 20), (64, 48)),
        ((8, 8), (32, 32)),
        ((7, 13), (29, 31)),
        ((1, 1), (4, 4)),
    ],
    ids=["shrink", "shrink-small", "enlarge", "digits", "odd", "one-pixel"],
)
def test_resize_matches_the_trainers_pipeline(
    source: tuple[int, int], target: tuple[int, int]
) -> None:
    """Exactly what tf.image.resize gives in training (bilinear, then rounded)."""
    import tensorflow as tf

    pixels = (np.random.default_rng(0).random((*source, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    ours = preprocess.decode(buffer.getvalue(), target, 10**7).astype(int)
    trainer = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(pixels, target)), 0, 255), tf.uint8)
    np.testing.assert_array_equal(ours, trainer.numpy().astype(int))


def test_pixel_limit_is_read_from_the_header() -> None:
    buffer = io.BytesIO()
    Image.new("L", (101, 100)).save(buffer, format="PNG")
    with pytest.raises(preprocess.BadImageError) as caught:
        preprocess.decode(buffer.getvalue(), (8, 8), 10_000)
    assert caught.value.reason == "too_many_pixels"


def test_batcher_gathers_concurrent_requests_and_splits_the_answer() -> None:
    seen: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        seen.append(len(batch))
        return batch * 2

    async def scenario() -> list[np.ndarray]:
        batcher = Batcher(run, max_batch_size=4, max_wait=0.05)
        rows = [np.full((1, 2), i, np.float32) for i in range(6)]
        try:
            return await asyncio.gather(*(batcher.submit(r) for r in rows))
        finally:
            batcher.close()

    answers = asyncio.run(scenario())
    assert [float(a[0, 0]) for a in answers] == [0, 2, 4, 6, 8, 10]
    assert sorted(seen, reverse=True) == [4, 2]


@pytest.mark.parametrize(
    ("event_loop", "log_level", "uvloop_policy", "timing_lines"),
    [("auto", "INFO", True, False), ("asyncio", "DEBUG", False, True)],
)
def test_settle_freezes_the_start_up_heap(
    event_loop: str, log_level: str, uvloop_policy: bool, timing_lines: bool
) -> None:
    import asyncio
    import gc
    import logging

    import uvloop

    from kubearts_predictor import server

    policy = asyncio.get_event_loop_policy()
    trace = logging.getLogger("kserve.trace")
    level = trace.level
    trace.setLevel(logging.DEBUG)
    try:
        server.settle(event_loop, log_level)
        assert gc.get_freeze_count() > 10_000  # this process's modules and objects
        assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy) == uvloop_policy
        assert trace.isEnabledFor(logging.INFO) == timing_lines
    finally:
        gc.unfreeze()
        asyncio.set_event_loop_policy(policy)
        trace.setLevel(level)
