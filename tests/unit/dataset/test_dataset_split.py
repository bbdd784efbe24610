"""Specification of the seeded, stratified train/eval split."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from kubearts_dataset.split import Sample, parse_ratio, split_samples, train_count


def _classes(**sizes: int) -> list[Sample]:
    return [
        Sample(path=f"{label}/{index:04d}.png", label=label)
        for label, size in sizes.items()
        for index in range(size)
    ]


DIGITS_LIKE = _classes(a=178, b=182, c=177, d=10, e=3)


@pytest.mark.parametrize(
    ("n", "ratio", "expected"),
    [
        pytest.param(178, "0.8", (142, False), id="rounds-142.4-down"),
        pytest.param(10, "0.75", (8, False), id="rounds-7.5-half-up"),
        pytest.param(5, "0.9", (4, True), id="keeps-one-for-eval"),
        pytest.param(5, "0.05", (1, True), id="keeps-one-for-train"),
        pytest.param(1, "0.8", (1, True), id="single-sample-goes-to-train"),
        pytest.param(7, "1", (7, False), id="ratio-one-is-unsplit"),
        pytest.param(2, "0.5", (1, False), id="two-split-evenly"),
    ],
)
def test_train_count(n: int, ratio: str, expected: tuple[int, bool]) -> None:
    assert train_count(n, parse_ratio(ratio)) == expected


def test_stratified_split_applies_the_ratio_within_every_class() -> None:
    split = split_samples(DIGITS_LIKE, train_ratio=Fraction(4, 5), seed=1)
    assert split.per_class() == {
        "a": {"train": 142, "eval": 36, "test": 0},
        "b": {"train": 146, "eval": 36, "test": 0},
        "c": {"train": 142, "eval": 35, "test": 0},
        "d": {"train": 8, "eval": 2, "test": 0},
        "e": {"train": 2, "eval": 1, "test": 0},
    }
    assert not set(split.train) & set(split.eval)
    assert len(split.train) + len(split.eval) == len(DIGITS_LIKE)


def test_same_seed_gives_the_same_split() -> None:
    first = split_samples(DIGITS_LIKE, train_ratio=Fraction(4, 5), seed=7)
    second = split_samples(DIGITS_LIKE, train_ratio=Fraction(4, 5), seed=7)
    assert first.train == second.train
    assert first.eval == second.eval


def test_different_seeds_give_different_splits() -> None:
    first = split_samples(DIGITS_LIKE, train_ratio=Fraction(4, 5), seed=1)
    second = split_samples(DIGITS_LIKE, train_ratio=Fraction(4, 5), seed=2)
    assert first.eval != second.eval
    assert first.per_class() == second.per_class()


def test_split_does_not_depend_on_the_order_files_were_found() -> None:
    shuffled = list(DIGITS_LIKE)
    random.Random(99).shuffle(shuffled)
    assert (
        split_samples(shuffled, train_ratio=Fraction(4, 5), seed=3).eval
        == split_samples(DIGITS_LIKE, train_ratio=Fraction(4, 5), seed=3).eval
    )


def test_adding_a_class_leaves_the_other_classes_split_unchanged() -> None:
    before = split_samples(_classes(a=50, b=40), train_ratio=Fraction(4, 5), seed=5)
    after = split_samples(_classes(a=50, b=40, z=30), train_ratio=Fraction(4, 5), seed=5)
    assert [s for s in after.eval if s.label != "z"] == before.eval


def test_ratio_one_is_an_unsplit_version() -> None:
    split = split_samples(DIGITS_LIKE, train_ratio=Fraction(1), seed=0)
    assert len(split.train) == len(DIGITS_LIKE)
    assert split.eval == []
    assert split.warnings == []


@pytest.mark.parametrize(
    ("sizes", "ratio", "fragment"),
    [
        pytest.param({"big": 20, "solo": 1}, "0.8", "class 'solo' has 1 sample", id="one-sample"),
        pytest.param(
            {"big": 20, "few": 4}, "0.9", "class 'few' has 4 samples", id="ratio-leaves-eval-empty"
        ),
    ],
)
def test_classes_too_small_to_split_are_reported(
    sizes: dict[str, int], ratio: str, fragment: str
) -> None:
    split = split_samples(_classes(**sizes), train_ratio=parse_ratio(ratio), seed=0)
    assert len(split.warnings) == 1
    assert fragment in split.warnings[0]


def test_unstratified_split_uses_the_ratio_over_the_whole_pool() -> None:
    split = split_samples(DIGITS_LIKE, train_ratio=Fraction(4, 5), seed=0, stratified=False)
    assert len(split.train) == 440  # round(550 * 0.8)
    assert len(split.eval) == 110


def test_manifest_usage_is_honoured_and_only_unmarked_samples_are_split() -> None:
    samples = [
        Sample("fixed-train.jpg", "a", "TRAIN"),
        Sample("fixed-eval.jpg", "a", "EVAL"),
        Sample("held-out.jpg", "a", "TEST"),
        Sample("unlabelled-use.jpg", "a", "INFERENCE"),
        *_classes(a=10),
    ]
    split = split_samples(samples, train_ratio=Fraction(1, 2), seed=0)
    assert Sample("fixed-train.jpg", "a", "TRAIN") in split.train
    assert Sample("fixed-eval.jpg", "a", "EVAL") in split.eval
    assert [s.path for s in split.test] == ["held-out.jpg"]
    assert [s.path for s in split.excluded] == ["unlabelled-use.jpg"]
    assert (len(split.train), len(split.eval)) == (6, 6)


def test_ignore_policy_splits_every_sample() -> None:
    samples = [Sample(f"{i}.jpg", "a", "EVAL") for i in range(10)]
    split = split_samples(samples, train_ratio=Fraction(4, 5), seed=0, usage_policy="ignore")
    assert (len(split.train), len(split.eval), len(split.test)) == (8, 2, 0)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("0", id="zero"),
        pytest.param("1.2", id="above-one"),
        pytest.param("-0.5", id="negative"),
        pytest.param("eighty", id="not-a-number"),
    ],
)
def test_invalid_ratios_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="trainRatio"):
        parse_ratio(text)
