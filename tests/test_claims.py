"""The four claims: each part judged from its interval, the claim from its parts."""

import numpy as np
import pandas as pd
import pytest

from simqnas.claims import (
    NOT_REPRODUCED,
    NOT_RESOLVED,
    NOT_RUN,
    REPRODUCED,
    Part,
    claim_verdict,
    claims_markdown,
    claims_table,
)
from simqnas.statistics import encode_correct
from simqnas.summary import hypervolume_table

SAMPLES = 1000
BASELINES = pd.DataFrame(
    [
        {
            "network": "bert",
            "reference": False,
            "baseline": b,
            "host": h,
            "accuracy": a,
            "size_mb": s,
            "normalized_latency": lat,
        }
        for b, a, s, fp32_lat in (("fp32", 0.86, 90.0, 2.0), ("int8", 0.80, 60.0, 1.0))
        for h, lat in ((None, np.nan), ("local", fp32_lat))
    ]
)


def evaluations(
    levels: dict[tuple[str, str], float], seeds=(0, 1, 2), progress: float = 0.05
) -> pd.DataFrame:
    """Two iterations of three points per (space, algorithm) run, both objectives: a higher level is a
    better front (more accurate and cheaper); the second iteration is `progress` better than the first."""
    rows = []
    for (space, algorithm), level in levels.items():
        for objective, cost, scale in (("size", "size_mb", 60.0), ("latency", "normalized_latency", 1.0)):
            for seed in seeds:
                jitter = 0.004 * seed
                for iteration in (0, 1):
                    gain = level + jitter + progress * iteration
                    for k in range(3):
                        rows.append(
                            {
                                "space": space,
                                "objective": objective,
                                "algorithm": algorithm,
                                "seed": seed,
                                "evaluation": 3 * iteration + k,
                                "iteration": iteration,
                                "accuracy": 0.70 + 0.04 * k + gain,
                                cost: scale * (0.4 + 0.2 * k) * (1 - gain),
                                "host": "local" if objective == "latency" else None,
                            }
                        )
    return pd.DataFrame(rows)


def held_out_tables(frame: pd.DataFrame, point_wrong: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = np.arange(SAMPLES) < 800
    point = base.copy()
    point[:point_wrong] = False
    test = frame.assign(test_samples=SAMPLES, test_correct=encode_correct(point))
    baselines = pd.DataFrame(
        [
            {
                "network": "bert",
                "reference": False,
                "baseline": "int8",
                "test_samples": SAMPLES,
                "test_correct": encode_correct(base),
            }
        ]
    )
    return test, baselines


def table(frame: pd.DataFrame, point_wrong: int = 0, margin: float = 0.01) -> pd.DataFrame:
    hypervolume, normalizations = hypervolume_table(frame, BASELINES, 0.5)
    test, test_baselines = held_out_tables(frame, point_wrong)
    return claims_table("bert", frame, BASELINES, hypervolume, normalizations, test, test_baselines, margin)


def verdicts(result: pd.DataFrame) -> dict[int, str]:
    return dict(zip(result["claim"], result["claim_verdict"], strict=False))


def test_every_claim_reproduced_when_the_intervals_say_so():
    frame = evaluations(
        {
            ("joint", "linas"): 0.10,
            ("joint", "nsga2"): 0.0,
            ("joint", "random"): -0.02,
            ("quant", "linas"): -0.05,
        }
    )
    result = table(frame)
    assert verdicts(result) == dict.fromkeys(range(1, 5), REPRODUCED)
    assert (result["verdict"] == REPRODUCED).all()
    two = result[result["claim"] == 2]
    assert two["part"].tolist() == [
        "size: linas - nsga2",
        "size: linas - random",
        "latency: linas - nsga2",
        "latency: linas - random",
    ]
    assert (two["ci95_low"] > 0).all() and two["measured"].str.endswith("(3 seeds)").all()


def test_an_outside_peer_is_no_part_of_the_paper_s_claim():
    frame = evaluations(
        {("joint", "linas"): 0.1, ("joint", "nsga2"): 0.0, ("joint", "random"): 0.0, ("joint", "tpe"): 0.2}
    )
    result = table(frame)
    assert verdicts(result)[2] == REPRODUCED
    assert not result["part"].str.contains("tpe").any()


def test_a_peer_ahead_of_linas_is_not_reproduced_and_a_straddling_one_not_resolved():
    behind = table(evaluations({("joint", "linas"): 0.0, ("joint", "nsga2"): 0.1}))
    assert verdicts(behind)[2] == NOT_REPRODUCED
    # the same level, seeds in a different order: the paired difference straddles 0
    tied = evaluations({("joint", "linas"): 0.0}, seeds=(0, 1, 2))
    other = evaluations({("joint", "nsga2"): 0.0}, seeds=(0, 1, 2))
    other["seed"] = other["seed"].map({0: 1, 1: 2, 2: 0})
    assert verdicts(table(pd.concat([tied, other])))[2] == NOT_RESOLVED


def test_one_seed_resolves_no_hypervolume_claim():
    frame = evaluations(
        {("joint", "linas"): 0.1, ("joint", "nsga2"): 0.0, ("quant", "linas"): 0.0}, seeds=(0,)
    )
    result = verdicts(table(frame))
    assert result[2] == result[3] == result[4] == NOT_RESOLVED


def test_searches_the_config_lacks_are_not_run():
    result = table(evaluations({("joint", "linas"): 0.1}))
    assert verdicts(result)[2] == verdicts(result)[3] == NOT_RUN
    assert verdicts(result)[4] == REPRODUCED


def test_a_search_that_does_not_progress_is_not_reproduced():
    frame = evaluations({("joint", "linas"): 0.1}, progress=-0.05)
    assert verdicts(table(frame))[4] == NOT_REPRODUCED


@pytest.mark.parametrize(("wrong", "verdict"), [(0, REPRODUCED), (10, NOT_RESOLVED), (40, NOT_REPRODUCED)])
def test_iso_accuracy_is_judged_on_the_test_split_with_the_margin(wrong, verdict):
    # -1 pp straddles the -1 pp margin; -4 pp lies wholly below it
    result = table(evaluations({("joint", "linas"): 0.1}), point_wrong=wrong)
    one = result[result["claim"] == 1]
    assert (one["verdict"] == verdict).all() and one["claim_verdict"].iloc[0] == verdict
    assert one["estimate"].tolist() == [pytest.approx(-wrong / SAMPLES)] * 2
    assert one["measured"].str.contains("x; test ").all()


def test_a_front_with_no_cheaper_iso_accurate_point_is_not_reproduced():
    result = table(evaluations({("joint", "linas"): -0.15}))
    one = result[result["claim"] == 1]
    assert (one["verdict"] == NOT_REPRODUCED).all()
    assert one["measured"].str.startswith("best cost ratio at validation iso-accuracy").all()


def test_claim_verdict_from_parts():
    def parts(*verdicts: str) -> list[Part]:
        return [Part(2, str(i), "", 0.0, 0.0, 0.0, "", v) for i, v in enumerate(verdicts)]

    assert claim_verdict(parts(REPRODUCED, REPRODUCED)) == REPRODUCED
    assert claim_verdict(parts(REPRODUCED, NOT_RESOLVED)) == NOT_RESOLVED
    assert claim_verdict(parts(NOT_RESOLVED, NOT_REPRODUCED)) == NOT_REPRODUCED
    assert claim_verdict(parts(REPRODUCED, NOT_RUN)) == NOT_RESOLVED
    assert claim_verdict(parts(NOT_RUN, NOT_RUN)) == NOT_RUN


def test_markdown_lists_verdicts_parts_and_rules():
    markdown = claims_markdown(table(evaluations({("joint", "linas"): 0.1, ("joint", "nsga2"): 0.0})))
    assert markdown.count("| bert ") >= 4 + 6
    assert "iso-accuracy margin 1.00 pp" in markdown and "seed-paired difference" in markdown
