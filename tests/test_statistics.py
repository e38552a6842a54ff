"""The statistics of the claims: correctness strings, paired bootstrap differences, t intervals over seeds."""

import math

import numpy as np
import pytest

from simqnas.statistics import (
    decode_correct,
    encode_correct,
    paired_difference,
    paired_seed_difference,
    t_interval,
)


def test_correctness_survives_its_text_form():
    rng = np.random.default_rng(0)
    for samples in (1, 7, 8, 9, 1500):
        correct = rng.random(samples) < 0.8
        text = encode_correct(correct)
        assert np.array_equal(decode_correct(text, samples), correct)
    assert len(encode_correct(np.ones(1500, dtype=bool))) == 252
    with pytest.raises(ValueError, match="does not hold 20 samples"):
        decode_correct(encode_correct(np.ones(8, dtype=bool)), 20)


def _pair(n: int, both: int, only_model: int, only_baseline: int) -> tuple[np.ndarray, np.ndarray]:
    model = np.zeros(n, dtype=bool)
    baseline = np.zeros(n, dtype=bool)
    model[:both] = baseline[:both] = True
    model[both : both + only_model] = True
    baseline[both + only_model : both + only_model + only_baseline] = True
    order = np.random.default_rng(1).permutation(n)
    return model[order], baseline[order]


def test_identical_models_differ_by_exactly_nothing():
    model, _ = _pair(1500, 1200, 0, 0)
    result = paired_difference(model, model.copy())
    assert (result.difference.estimate, result.difference.low, result.difference.high) == (0, 0, 0)
    assert result.mcnemar_p == 1.0 and not result.difference.excludes(0)


def test_a_clearly_better_model_has_an_interval_above_zero():
    # 60 more samples right than the baseline out of 1,500: +4 pp, SE of the paired difference ~0.6 pp
    model, baseline = _pair(1500, 1200, 80, 20)
    result = paired_difference(model, baseline, seed=3)
    assert result.difference.estimate == pytest.approx(0.04)
    assert result.difference.excludes(0) and result.difference.low > 0
    # the normal approximation of the paired difference's standard error: sqrt((b + c) / n - d^2) / sqrt(n)
    se = math.sqrt((100 / 1500 - 0.04**2) / 1500)
    assert result.difference.low == pytest.approx(0.04 - 1.96 * se, abs=0.002)
    assert result.difference.high == pytest.approx(0.04 + 1.96 * se, abs=0.002)
    assert result.mcnemar_p < 1e-8 and (result.only_model, result.only_baseline) == (80, 20)
    assert paired_difference(model, baseline, seed=3) == result  # seeded: one file, one answer


def test_a_small_difference_on_few_samples_is_not_resolved():
    model, baseline = _pair(500, 400, 6, 4)
    result = paired_difference(model, baseline)
    assert result.difference.low < 0 < result.difference.high
    assert result.mcnemar_p > 0.5


def test_the_count_bootstrap_matches_resampling_the_samples():
    model, baseline = _pair(200, 150, 15, 8)
    delta = model.astype(int) - baseline.astype(int)
    rng = np.random.default_rng(7)
    naive = delta[rng.integers(0, len(delta), size=(20_000, len(delta)))].mean(axis=1)
    result = paired_difference(model, baseline)
    assert result.difference.low == pytest.approx(np.quantile(naive, 0.025), abs=0.005)
    assert result.difference.high == pytest.approx(np.quantile(naive, 0.975), abs=0.005)


def test_unpaired_vectors_are_refused():
    with pytest.raises(ValueError, match="differ or are empty"):
        paired_difference(np.ones(3, dtype=bool), np.ones(4, dtype=bool))


def test_t_interval_over_seeds():
    summary = t_interval([1.0, 2.0, 3.0])
    assert (summary.mean, summary.std, summary.seeds) == (2.0, 1.0, 3)
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert (summary.low, summary.high) == (pytest.approx(2 - half), pytest.approx(2 + half))
    one = t_interval([0.7])
    assert one.mean == 0.7 and math.isnan(one.std) and math.isnan(one.low) and math.isnan(one.high)


def test_seed_differences_are_paired_by_seed():
    first = {0: 0.8, 1: 0.7, 2: 0.9, 5: 0.1}
    second = {0: 0.7, 1: 0.6, 2: 0.8, 3: 0.0}
    summary = paired_seed_difference(first, second)
    # seeds 0-2 only, each 0.1 ahead: no spread at all
    assert summary.seeds == 3 and summary.mean == pytest.approx(0.1) and summary.std == pytest.approx(0)
    with pytest.raises(ValueError, match="no seed in common"):
        paired_seed_difference({0: 1.0}, {1: 1.0})
