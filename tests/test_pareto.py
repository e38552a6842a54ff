import json

import numpy as np
import pytest

from simqnas.pareto import (
    Normalization,
    at_cost_pick,
    hypervolume,
    hypervolume_progression,
    iso_accuracy_pick,
    most_accurate_pick,
    non_dominated_mask,
    pareto_front_mask,
)

UNIT = Normalization.from_bounds([0.0, 0.0], [1.0, 1.0], reference=1.0)
MIN2 = [False, False]
# Staircase with corners at 0.25, 0.5, 0.75 against reference (1, 1):
# 0.25 x 0.25 + 0.25 x 0.5 + 0.25 x 0.75 = 0.375.
STAIRCASE = np.array([[0.25, 0.75], [0.5, 0.5], [0.75, 0.25]])


def test_front_minimization_with_dominated_point_and_duplicate():
    values = np.array([[2, 2], [1, 3], [3, 1], [2, 3], [2, 2], [3, 3]])
    assert pareto_front_mask(values, MIN2).tolist() == [True, True, True, False, False, False]


def test_front_duplicate_keeps_first_occurrence_whatever_the_order():
    values = np.array([[1, 1], [1, 1], [0, 2]])
    assert pareto_front_mask(values, MIN2).tolist() == [True, False, True]
    assert pareto_front_mask(values[::-1], MIN2).tolist() == [True, True, False]


def test_front_respects_directions():
    # accuracy (max), size (min): (0.9, 10) dominates (0.8, 20); (0.95, 30) trades off.
    values = np.array([[0.8, 20.0], [0.9, 10.0], [0.95, 30.0]])
    assert pareto_front_mask(values, [True, False]).tolist() == [False, True, True]
    # with both maximized, (0.95, 30) dominates everything
    assert pareto_front_mask(values, [True, True]).tolist() == [False, False, True]


def test_front_empty():
    assert pareto_front_mask(np.zeros((0, 2)), MIN2).tolist() == []


def test_hypervolume_staircase():
    assert hypervolume(STAIRCASE, MIN2, UNIT) == pytest.approx(0.375)


def test_hypervolume_single_point_and_default_reference():
    normalization = Normalization.from_bounds([0.0, 0.0], [1.0, 1.0])  # reference 1.1
    assert hypervolume(np.array([[0.5, 0.5]]), MIN2, normalization) == pytest.approx(0.6 * 0.6)


def test_hypervolume_raw_units_and_maximized_objective():
    # accuracy in [0.5, 1.0] maximized, size in [0, 100] minimized: the same staircase once normalized.
    normalization = Normalization.from_bounds([0.5, 0.0], [1.0, 100.0], reference=1.0)
    values = np.array([[0.875, 75.0], [0.75, 50.0], [0.625, 25.0]])
    assert hypervolume(values, [True, False], normalization) == pytest.approx(0.375)


def test_hypervolume_ignores_points_beyond_reference_and_empty_sets():
    assert hypervolume(np.array([[0.5, 1.5], [2.0, 0.1]]), MIN2, UNIT) == 0.0
    assert hypervolume(np.zeros((0, 2)), MIN2, UNIT) == 0.0
    with_outlier = np.concatenate([STAIRCASE, [[0.1, 1.2]]])
    assert hypervolume(with_outlier, MIN2, UNIT) == pytest.approx(0.375)


def test_hypervolume_progression():
    values = np.array([[0.5, 0.5], [0.75, 0.75], [0.25, 0.75], [0.75, 0.25], [0.5, 0.5]])
    expected = [0.25, 0.25, 0.3125, 0.375, 0.375]
    assert hypervolume_progression(values, MIN2, UNIT) == pytest.approx(expected)


def test_hypervolume_progression_matches_hypervolume_of_prefixes():
    rng = np.random.default_rng(0)
    values = rng.random((30, 2))
    progression = hypervolume_progression(values, MIN2, UNIT)
    assert progression == pytest.approx([hypervolume(values[: k + 1], MIN2, UNIT) for k in range(30)])
    assert np.all(np.diff(progression) >= 0)


def test_normalization_round_trips_through_json():
    normalization = Normalization.from_bounds([0.5, 1e6], [1.0, 9e7], reference=[1.1, 1.2])
    again = Normalization.from_dict(json.loads(json.dumps(normalization.to_dict())))
    assert again == normalization


def test_normalization_rejects_bad_bounds():
    with pytest.raises(ValueError, match="exceed"):
        Normalization.from_bounds([1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="length"):
        Normalization((0.0,), (1.0, 1.0), (1.1,))


# baseline: accuracy 0.80 at cost 100
FRONT_ACC = [0.85, 0.80, 0.795, 0.70]
FRONT_COST = [120.0, 50.0, 40.0, 20.0]


def test_iso_accuracy_pick_and_its_tolerance():
    # the best cost ratio among points at least as accurate as 0.80: 100 / 50, then 100 / 40, 100 / 20
    assert iso_accuracy_pick(FRONT_ACC, FRONT_COST, 0.80, 100.0) == 1
    assert iso_accuracy_pick(FRONT_ACC, FRONT_COST, 0.80, 100.0, tolerance=0.005) == 2
    assert iso_accuracy_pick(FRONT_ACC, FRONT_COST, 0.80, 100.0, tolerance=0.2) == 3
    assert iso_accuracy_pick(FRONT_ACC, FRONT_COST, 0.90, 100.0) is None


def test_at_cost_pick():
    assert at_cost_pick(FRONT_ACC, FRONT_COST, 0.80, 100.0) == 1
    assert at_cost_pick(FRONT_ACC, FRONT_COST, 0.75, 120.0) == 0
    assert at_cost_pick(FRONT_ACC, FRONT_COST, 0.80, 10.0) is None


def test_most_accurate_pick():
    assert most_accurate_pick(FRONT_ACC, FRONT_COST) == 0
    # ties on accuracy: the cheaper point
    assert most_accurate_pick([0.9, 0.9], [50.0, 25.0]) == 1
    with pytest.raises(ValueError, match="no points"):
        most_accurate_pick([], [])


def test_non_dominated_mask_keeps_equal_points():
    values = np.array([[0.8, 10.0], [0.8, 10.0], [0.7, 10.0], [0.9, 20.0]])
    assert non_dominated_mask(values, (True, False)).tolist() == [True, True, False, True]
    assert pareto_front_mask(values, (True, False)).tolist() == [True, False, False, True]
