"""LINAS's lightly trained predictors: Ridge vs RBF-SVR, each tuned by grid-search cross-validation.

One predictor is fitted per objective on every evaluation so far (features: simqnas.search.linas.features).
Both regressors are tuned on (negative) mean absolute percentage error and the better one is kept, as in
LINAS / DyNAS-T.

Two details that the published description leaves open are fixed here:

- Label scaling: labels are divided by 10**floor(log10(max |label|)) before fitting, so that the largest
  scaled label lies in [1, 10) whatever the unit (bytes, milliseconds, accuracy). Ridge's alpha and SVR's C
  are then comparable across objectives; predictions are multiplied back.
- MAPE near zero: sklearn's MAPE divides by |y| (floored only at machine epsilon), so one label at or near
  zero (e.g. an objective whose minimum is 0) would dominate the score and the model choice. The scorer
  here divides by max(|y|, 1% of the largest |label| of the whole fit) instead. For labels that stay
  above 1% of their maximum (accuracy, model size, normalized latency) this is exactly MAPE.

Every fit also ranks, on the same folds, the kept regressor's out-of-fold predictions against the labels
(Kendall's tau, `Predictor.cv_rank`). LINAS's inner NSGA-II uses predictions only to order networks, and a
constant orders nothing (tau 0), so `Predictor.beats_constant` is cv_rank > 0: LINAS does not search on a
predictor that orders held-out evaluations no better than a constant (simqnas.search.linas). MAPE is no
such test: on accuracy read on 500 sentences, the binomial noise (~1.9% relative) dominates every
predictor's MAPE, and the tuned regressor loses to the constant in MAPE even where it orders unseen
networks with tau 0.3-0.4 (benchmarks/search_efficiency.py --predictor-quality).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy.stats import kendalltau
from sklearn.base import RegressorMixin, clone
from sklearn.linear_model import Ridge
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict
from sklearn.svm import SVR
from threadpoolctl import threadpool_limits

# The published grids: alpha 0.1..10 step 0.1, C 1..100 step 1.
PUBLISHED_RIDGE_ALPHAS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 101))
PUBLISHED_SVR_CS: tuple[float, ...] = tuple(float(c) for c in range(1, 101))
DEFAULT_FOLDS = 5
# Relative errors are measured against at least this fraction of the largest |label| (see module doc).
MAPE_FLOOR_FRACTION = 0.01


@dataclass(frozen=True)
class Predictor:
    """A fitted regressor for one objective, in the objective's own units.

    `cv_score` is the best grid-search score: minus the (floored) mean absolute percentage error, as a
    fraction, so higher is better and 0 is perfect; NaN when there were too few samples to cross-validate.
    `cv_rank` is Kendall's tau between the out-of-fold predictions of the kept regressor (its tuned
    parameters refitted on each training fold) and the labels; NaN when there were too few samples.
    """

    kind: Literal["ridge", "svr"]
    model: RegressorMixin
    scale: float
    cv_score: float
    cv_rank: float = float("nan")

    @property
    def beats_constant(self) -> bool:
        """Whether it orders held-out evaluations better than a constant does (False when not ranked)."""
        return bool(self.cv_rank > 0)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(features), dtype=float) * self.scale


def label_scale(labels: np.ndarray) -> float:
    """The power of ten at or below the largest |label| (1 for all-zero labels)."""
    top = float(np.max(np.abs(labels))) if len(labels) else 0.0
    return 10.0 ** np.floor(np.log10(top)) if top > 0 else 1.0


def _floored_mape(y_true: np.ndarray, y_pred: np.ndarray, floor: float) -> float:
    return float(np.mean(np.abs(y_pred - y_true) / np.maximum(np.abs(y_true), floor)))


def fit_predictor(
    features: np.ndarray,
    labels: np.ndarray,
    seed: int,
    *,
    ridge_alphas: Sequence[float] = PUBLISHED_RIDGE_ALPHAS,
    svr_cs: Sequence[float] = PUBLISHED_SVR_CS,
    folds: int = DEFAULT_FOLDS,
) -> Predictor:
    """Fit Ridge and RBF-SVR by grid-search CV on floored MAPE; return the better (Ridge on ties).

    `seed` fixes the (shuffled) fold split, so the fit is deterministic. With fewer samples than `folds`
    the number of folds drops to the number of samples (leave-one-out); with a single sample there is
    nothing to cross-validate and a Ridge with alpha 1 is returned with cv_score NaN. Coarser
    `ridge_alphas` / `svr_cs` grids trade tuning for speed (the published grids cost 200 fits per fold).
    """
    features = np.asarray(features, dtype=float)
    labels = np.asarray(labels, dtype=float)
    if features.ndim != 2 or labels.shape != (len(features),):
        raise ValueError(f"predictor: features {features.shape} and labels {labels.shape} do not match")
    if len(labels) == 0:
        raise ValueError("predictor: no samples to fit")
    scale = label_scale(labels)
    y = labels / scale
    if len(y) < 2:
        return Predictor("ridge", Ridge(alpha=1.0).fit(features, y), scale, float("nan"))

    floor = MAPE_FLOOR_FRACTION * float(np.max(np.abs(y)))
    # An all-zero label vector has floor 0; any positive floor then makes the score finite.
    scorer = make_scorer(_floored_mape, greater_is_better=False, floor=floor if floor > 0 else 1.0)
    cv = KFold(n_splits=min(folds, len(y)), shuffle=True, random_state=seed)
    candidates: list[tuple[Literal["ridge", "svr"], RegressorMixin, dict[str, list[float]]]] = [
        ("ridge", Ridge(), {"alpha": list(ridge_alphas)}),
        ("svr", SVR(kernel="rbf", gamma="auto", epsilon=0.0), {"C": list(svr_cs)}),
    ]
    best: Predictor | None = None
    for kind, estimator, grid in candidates:
        # The matrices are small (hundreds x hundreds): multi-threaded BLAS only adds overhead, up to
        # 8x on a busy 2-core machine (measured).
        with threadpool_limits(limits=1):
            search = GridSearchCV(estimator, grid, scoring=scorer, cv=cv, refit=True).fit(features, y)
        if best is None or search.best_score_ > best.cv_score:
            best = Predictor(kind, search.best_estimator_, scale, float(search.best_score_))
    assert best is not None
    with threadpool_limits(limits=1):
        out_of_fold = cross_val_predict(clone(best.model), features, y, cv=cv)
    rank = kendalltau(out_of_fold, y).statistic  # NaN for constant predictions or labels
    return replace(best, cv_rank=float(rank) if np.isfinite(rank) else 0.0)
