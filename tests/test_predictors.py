import numpy as np
import pytest

from simqnas.search.base import History, Objective
from simqnas.search.linas import LINAS
from simqnas.search.predictors import (
    PUBLISHED_RIDGE_ALPHAS,
    PUBLISHED_SVR_CS,
    fit_predictor,
    label_scale,
)
from simqnas.space import SearchSpace

# Small grids keep the tests fast; the choice between the two regressors is what is under test.
GRIDS = {"ridge_alphas": (0.1, 1.0, 10.0), "svr_cs": (1.0, 10.0, 100.0)}
SPACE = SearchSpace.from_dict(
    {
        "elastic": {"heads": {"count": 4, "choices": [6, 8, 10, 12]}},
        "quantization": {"layers": 6, "choices": ["int8", "fp32"]},
    }
)


def _genomes(n: int, seed: int = 0) -> np.ndarray:
    return SPACE.sample(n, np.random.default_rng(seed))


def _linear(genomes: np.ndarray) -> np.ndarray:
    """Exactly linear in the one-hot features (a per-gene, per-choice contribution)."""
    weights = np.random.default_rng(1).uniform(0.0, 3.0, SPACE.one_hot(genomes).shape[1])
    return 20.0 + SPACE.one_hot(genomes) @ weights


def _xor(genomes: np.ndarray) -> np.ndarray:
    """Parity of two binary genes: no additive model of the one-hot features does better than the mean."""
    q = SPACE.n_arch_genes
    return 1.0 + 4.0 * (genomes[:, q] ^ genomes[:, q + 1])


def test_published_grids():
    assert len(PUBLISHED_RIDGE_ALPHAS) == 100 and PUBLISHED_RIDGE_ALPHAS[0] == 0.1
    assert PUBLISHED_RIDGE_ALPHAS[-1] == 10.0 and PUBLISHED_RIDGE_ALPHAS[49] == 5.0
    assert list(PUBLISHED_SVR_CS) == [float(c) for c in range(1, 101)]


def test_linear_labels_pick_ridge_and_predict_well():
    genomes = _genomes(120)
    predictor = fit_predictor(SPACE.one_hot(genomes), _linear(genomes), seed=0, **GRIDS)
    assert predictor.kind == "ridge"
    test = _genomes(50, seed=1)
    error = np.abs(predictor.predict(SPACE.one_hot(test)) - _linear(test)) / _linear(test)
    assert error.mean() < 0.02


def test_interaction_labels_pick_svr_and_predict_well():
    genomes = _genomes(120)
    predictor = fit_predictor(SPACE.one_hot(genomes), _xor(genomes), seed=0, **GRIDS)
    assert predictor.kind == "svr"
    test = _genomes(50, seed=1)
    # No additive model beats predicting the mean here (relative error ~1.2); SVR separates the classes.
    error = np.abs(predictor.predict(SPACE.one_hot(test)) - _xor(test)) / _xor(test)
    mean_error = np.abs(_xor(genomes).mean() - _xor(test)) / _xor(test)
    assert error.mean() < 0.5 * mean_error.mean()


def test_linas_fits_one_predictor_per_objective_on_raw_values():
    genomes = _genomes(120)
    values = np.stack([_xor(genomes) / 10.0, _linear(genomes) * 1e6], axis=1)
    history = History(genomes, values, (Objective("accuracy", True), Objective("size", False)))
    predictors = LINAS(**GRIDS).fit_predictors(SPACE, history, seed=0)
    assert [p.kind for p in predictors] == ["svr", "ridge"]
    # predictions come back in the objective's own units (bytes here), with the sign of the measurement
    assert predictors[1].predict(SPACE.one_hot(genomes[:5])) == pytest.approx(values[:5, 1], rel=0.05)


def test_label_scaling_is_a_power_of_ten_below_the_maximum():
    assert label_scale(np.array([0.5, 0.93])) == pytest.approx(0.1)
    assert label_scale(np.array([3.0e7, 8.9e7])) == pytest.approx(1e7)
    assert label_scale(np.zeros(3)) == 1.0


def test_fit_is_deterministic_for_a_seed():
    genomes = _genomes(40)
    features, labels = SPACE.one_hot(genomes), _linear(genomes) + _xor(genomes)
    a = fit_predictor(features, labels, seed=3, **GRIDS)
    b = fit_predictor(features, labels, seed=3, **GRIDS)
    assert (a.kind, a.cv_score) == (b.kind, b.cv_score)
    assert np.array_equal(a.predict(features), b.predict(features))


@pytest.mark.parametrize("n", [2, 3, 4])
def test_fewer_samples_than_folds(n):
    genomes = _genomes(n)
    predictor = fit_predictor(SPACE.one_hot(genomes), _linear(genomes), seed=0, **GRIDS)
    assert np.isfinite(predictor.cv_score)
    assert predictor.predict(SPACE.one_hot(genomes)).shape == (n,)


def test_single_sample_predicts_its_label():
    genomes = _genomes(1)
    predictor = fit_predictor(SPACE.one_hot(genomes), np.array([0.8]), seed=0, **GRIDS)
    assert np.isnan(predictor.cv_score)
    assert predictor.predict(SPACE.one_hot(_genomes(3, seed=5))) == pytest.approx([0.8] * 3)


def test_labels_at_zero_keep_the_score_finite_and_the_choice_sane():
    # A linear objective whose minimum is exactly 0 (like ZDT's f1): plain MAPE would be ~1e15.
    genomes = _genomes(120)
    q = SPACE.n_arch_genes
    labels = genomes[:, q : q + 3].sum(axis=1) * 0.5
    assert np.any(labels == 0)
    predictor = fit_predictor(SPACE.one_hot(genomes), labels, seed=0, **GRIDS)
    assert np.isfinite(predictor.cv_score) and predictor.cv_score > -1.0
    assert predictor.kind == "ridge"


def test_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="do not match"):
        fit_predictor(np.zeros((3, 4)), np.zeros(2), seed=0)
    with pytest.raises(ValueError, match="no samples"):
        fit_predictor(np.zeros((0, 4)), np.zeros(0), seed=0)


def test_a_regressor_beats_the_constant_only_where_there_is_signal():
    genomes = _genomes(60)
    assert fit_predictor(SPACE.one_hot(genomes), _linear(genomes), seed=0, **GRIDS).beats_constant
    noise = 0.85 + 0.016 * np.random.default_rng(2).standard_normal(60)  # binomial-like accuracy noise
    predictor = fit_predictor(SPACE.one_hot(genomes), noise, seed=0, **GRIDS)
    assert not predictor.beats_constant
    assert not fit_predictor(SPACE.one_hot(genomes[:1]), noise[:1], seed=0, **GRIDS).beats_constant
