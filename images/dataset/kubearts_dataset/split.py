"""The deterministic, seeded, optionally stratified train/eval split.

The same samples, ratio and seed give the same split on every machine and for any order
in which the files were found: samples are sorted by path before shuffling, and each class
is shuffled by its own ``random.Random`` seeded with ``"<seed>:<class>"`` (string seeds are
hashed with SHA-512 by :mod:`random`, so they do not depend on ``PYTHONHASHSEED``). Per-class
generators also mean that adding a class leaves the split of the other classes unchanged.

A class (or, unstratified, the whole pool) of ``n`` samples puts ``round(n * ratio)`` in
train, rounding halves up with exact fractions. When the ratio is below 1 and ``n >= 2``, both
sides keep at least one sample; a class whose ratio would leave a side empty, and a class
with a single sample (which goes to train), are reported in ``warnings``.

Usage from a manifest: with the ``honour`` policy (the default) samples marked TRAIN or EVAL
keep that side, TEST samples form a separate test list, INFERENCE samples are left out, and
only samples without a usage are split by the ratio. With ``ignore`` every sample is split.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from kubearts_dataset.result import ClassSplit

UsagePolicy = Literal["honour", "ignore"]


@dataclass(frozen=True, order=True)
class Sample:
    """A verified image: its path relative to the dataset directory, class and usage."""

    path: str
    label: str
    usage: str = ""


@dataclass
class Split:
    """The outcome of :func:`split_samples`; every list is sorted by path."""

    train: list[Sample] = field(default_factory=list)
    eval: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    excluded: list[Sample] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def per_class(self) -> dict[str, ClassSplit]:
        """Counts per class and side, classes sorted by name."""
        counts: dict[str, ClassSplit] = {}
        for side, samples in (("train", self.train), ("eval", self.eval), ("test", self.test)):
            for sample in samples:
                entry = counts.setdefault(sample.label, {"train": 0, "eval": 0, "test": 0})
                entry[side] += 1  # type: ignore[literal-required]
        return dict(sorted(counts.items()))


def parse_ratio(text: str) -> Fraction:
    """``"0.8"`` → ``Fraction(4, 5)``; fail unless it is a number in (0, 1]."""
    try:
        ratio = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"trainRatio {text!r} is not a number; use e.g. 0.8") from None
    if not 0 < ratio <= 1:
        raise ValueError(f"trainRatio {text} is outside (0, 1]; use e.g. 0.8, or 1 for no split")
    return ratio


def train_count(n: int, ratio: Fraction) -> tuple[int, bool]:
    """Samples of a group of ``n`` that go to train, and whether the ratio had to be bent."""
    if ratio == 1 or n < 2:
        return n, n == 1 and ratio < 1
    exact = math.floor(n * ratio + Fraction(1, 2))
    bounded = min(max(exact, 1), n - 1)
    return bounded, bounded != exact


def split_samples(
    samples: Iterable[Sample],
    *,
    train_ratio: Fraction,
    seed: int,
    stratified: bool = True,
    usage_policy: UsagePolicy = "honour",
) -> Split:
    """Split ``samples`` (see the module docstring for the rules)."""
    result = Split()
    pool: list[Sample] = []
    for sample in sorted(set(samples)):
        usage = sample.usage if usage_policy == "honour" else ""
        if usage == "TRAIN":
            result.train.append(sample)
        elif usage == "EVAL":
            result.eval.append(sample)
        elif usage == "TEST":
            result.test.append(sample)
        elif usage == "INFERENCE":
            result.excluded.append(sample)
        else:
            pool.append(sample)
    groups: dict[str, list[Sample]] = defaultdict(list)
    for sample in pool:
        groups[sample.label if stratified else ""].append(sample)
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda s: s.path)
        rng = random.Random(f"{seed}:{key}" if stratified else seed)
        rng.shuffle(members)
        count, bent = train_count(len(members), train_ratio)
        result.train.extend(members[:count])
        result.eval.extend(members[count:])
        if bent:
            result.warnings.append(_warning(key, stratified, len(members), count, train_ratio))
    for side in (result.train, result.eval, result.test, result.excluded):
        side.sort(key=lambda s: s.path)
    return result


def _warning(key: str, stratified: bool, n: int, count: int, ratio: Fraction) -> str:
    who = f"class {key!r}" if stratified else "the data set"
    if n == 1:
        return f"{who} has 1 sample: it is used for training only, none is left for evaluation"
    ratio_text = f"{float(ratio):g}"
    return (
        f"{who} has {n} samples: trainRatio {ratio_text} would leave one side empty, "
        f"so it is split {count} train / {n - count} eval"
    )
