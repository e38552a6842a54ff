"""The statistics behind the claims: paired accuracy differences on the test split and intervals over seeds.

Pure functions of numbers: a per-sample correctness vector (True where a model classified a test sample
correctly) and per-seed values. Correctness travels through files as a compact string (`encode_correct`).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: confidence level of every interval
LEVEL = 0.95
#: bootstrap resamples of a paired accuracy difference
BOOTSTRAP_RESAMPLES = 10_000


def encode_correct(correct: Sequence[bool] | np.ndarray) -> str:
    """Per-sample correctness as text: the bits packed eight to a byte, base64 (1,500 samples: 252 chars)."""
    bits = np.asarray(correct, dtype=bool)
    if bits.ndim != 1:
        raise ValueError(f"correctness must be one vector, got shape {bits.shape}")
    return base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def decode_correct(text: str, samples: int) -> np.ndarray:
    """The correctness vector of `samples` samples written by `encode_correct`."""
    packed = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    if len(packed) != math.ceil(samples / 8):
        raise ValueError(f"correctness of {len(packed) * 8} bits does not hold {samples} samples")
    return np.unpackbits(packed)[:samples].astype(bool)


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided confidence interval (NaN bounds: not enough data for one)."""

    estimate: float
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        """Whether the interval lies wholly above or wholly below `value` (never, without bounds)."""
        return bool(self.low > value or self.high < value)


@dataclass(frozen=True)
class PairedDifference:
    """Accuracy of a model minus that of a baseline on the same samples, with a paired bootstrap interval
    and McNemar's exact p-value (the samples only one of the two classifies correctly decide both)."""

    difference: Interval
    only_model: int
    only_baseline: int
    samples: int
    mcnemar_p: float


def paired_difference(
    model: np.ndarray, baseline: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> PairedDifference:
    """acc(model) - acc(baseline) on the same samples: percentile interval of the paired bootstrap (samples
    drawn with replacement, both models' outcomes kept together), seeded, so a file gives one answer."""
    model, baseline = np.asarray(model, dtype=bool), np.asarray(baseline, dtype=bool)
    if model.shape != baseline.shape or model.ndim != 1 or len(model) == 0:
        raise ValueError(f"paired correctness vectors differ or are empty: {model.shape} vs {baseline.shape}")
    delta = model.astype(np.int8) - baseline.astype(np.int8)
    n = len(delta)
    only_model, only_baseline = int((delta > 0).sum()), int((delta < 0).sum())
    discordant = only_model + only_baseline
    # a sample's paired outcome is +1, -1 or 0, so a resample of n samples is fully described by how many
    # of each it drew: a multinomial draw, the same distribution as resampling the samples themselves
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(n, [only_model / n, only_baseline / n, 1 - discordant / n], size=resamples)
    means = (drawn[:, 0] - drawn[:, 1]) / n
    alpha = 1 - LEVEL
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    p = stats.binomtest(only_model, discordant, 0.5).pvalue if discordant else 1.0
    return PairedDifference(
        Interval(float(delta.mean()), float(low), float(high)), only_model, only_baseline, n, float(p)
    )


@dataclass(frozen=True)
class SeedSummary:
    """Mean, standard deviation and the t interval of the mean over seeds."""

    mean: float
    std: float
    low: float
    high: float
    seeds: int


def t_interval(values: Sequence[float] | np.ndarray) -> SeedSummary:
    """Mean +- sample std and the two-sided t interval of the mean (NaN std and bounds from one value)."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"need at least one value, got shape {values.shape}")
    mean = float(values.mean())
    if len(values) < 2:
        return SeedSummary(mean, math.nan, math.nan, math.nan, 1)
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(1 - (1 - LEVEL) / 2, len(values) - 1)) * std / math.sqrt(len(values))
    return SeedSummary(mean, std, mean - half, mean + half, len(values))


def paired_seed_difference(first: dict[int, float], second: dict[int, float]) -> SeedSummary:
    """first - second over the seeds both ran (paired by seed: the algorithms of a seed share its first
    population), as a t interval; no common seed is an error."""
    common = sorted(set(first) & set(second))
    if not common:
        raise ValueError("no seed in common to pair")
    return t_interval([first[seed] - second[seed] for seed in common])
