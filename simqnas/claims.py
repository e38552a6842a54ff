"""The paper's four qualitative claims, each judged from the measured intervals by a stated rule.

1. The joint search's front beats the all-INT8 network on size and on latency at iso-accuracy (LINAS's
   front, seeds pooled; validation picks the point, the held-out test split judges it, as in the headline).
2. LINAS is ahead of NSGA-II and random search in hypervolume (the paper's peers; an outside peer such as
   TPE is compared in Fig 2c and the hypervolume summary, not in the paper's claim).
3. The joint search is ahead of the quantization-only search in hypervolume (Fig 3).
4. The search progresses toward the front: LINAS's last population has a larger hypervolume than its first.

Hypervolume claims compare final hypervolumes (one fixed normalization per objective) paired by seed, with
the 95% t interval of the mean difference. Each part of a claim is one of REPRODUCED (the interval lies
wholly on the claim's side), NOT_REPRODUCED (wholly on the other side), NOT_RESOLVED (it straddles the
boundary, or one seed gives no interval) or NOT_RUN (the config has no such search); a claim is reproduced
when all its parts are, not reproduced when any part is not, otherwise not resolved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simqnas.headline import Claim, format_test_difference, measure_claim, paired_test_difference
from simqnas.pareto import Normalization, hypervolume
from simqnas.statistics import SeedSummary, paired_seed_difference
from simqnas.summary import COST_COLUMN

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_RESOLVED = "not resolved at this budget"
NOT_RUN = "not run"

#: the algorithm whose front and progression the claims are about (the paper's)
LINAS = "linas"
#: the algorithms the paper's claim 2 puts LINAS ahead of
PEERS = ("nsga2", "random")
OBJECTIVES = ("size", "latency")

CLAIMS = {
    1: "joint search front beats all-INT8 at iso-accuracy (size and latency)",
    2: "LINAS ahead of NSGA-II and random search in hypervolume",
    3: "joint search ahead of quantization-only search in hypervolume",
    4: "the search progresses toward the front",
}

ISO_RULE = (
    "reproduced: cost ratio > 1 and the test interval's lower bound > -margin; not reproduced: no front "
    "point cheaper than the baseline at validation iso-accuracy, or the test interval's upper bound < -margin"
)
DIFFERENCE_RULE = "95% t interval of the seed-paired difference: above 0 reproduced, below 0 not reproduced"


@dataclass(frozen=True)
class Part:
    """One measured part of a claim, its interval and its verdict."""

    claim: int
    part: str
    measured: str
    estimate: float
    low: float
    high: float
    rule: str
    verdict: str


def _interval_verdict(low: float, high: float, boundary: float = 0.0) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return NOT_RESOLVED
    if low > boundary:
        return REPRODUCED
    if high < boundary:
        return NOT_REPRODUCED
    return NOT_RESOLVED


def _not_run(claim: int, part: str, rule: str) -> Part:
    return Part(claim, part, "not run", np.nan, np.nan, np.nan, rule, NOT_RUN)


def _difference_part(claim: int, part: str, summary: SeedSummary) -> Part:
    seeds = f"{summary.seeds} seed{'s' if summary.seeds != 1 else ''}"
    measured = (
        f"{summary.mean:+.3f} [{summary.low:+.3f}, {summary.high:+.3f}] ({seeds})"
        if summary.seeds > 1
        else f"{summary.mean:+.3f} ({seeds}: no interval)"
    )
    return Part(
        claim,
        part,
        measured,
        summary.mean,
        summary.low,
        summary.high,
        DIFFERENCE_RULE,
        _interval_verdict(summary.low, summary.high),
    )


def iso_accuracy_parts(
    evaluations: pd.DataFrame,
    baselines: pd.DataFrame,
    test: pd.DataFrame,
    test_baselines: pd.DataFrame,
    margin: float,
) -> list[Part]:
    """Claim 1: LINAS's joint front against the network's own all-INT8 baseline, per objective."""
    parts = []
    for objective in OBJECTIVES:
        name = f"{objective} at iso-accuracy vs all-INT8 ({LINAS})"
        ran = evaluations[
            (evaluations["space"] == "joint")
            & (evaluations["objective"] == objective)
            & (evaluations["algorithm"] == LINAS)
        ]
        if ran.empty:
            parts.append(_not_run(1, name, ISO_RULE))
            continue
        claim = Claim(name, objective, "ratio_at_iso_accuracy", "")
        measured = measure_claim(claim, evaluations, baselines, LINAS, margin)
        if measured.value is None or measured.value <= 1:
            ratio = "no point" if measured.value is None else f"{measured.value:.2f}x"
            text = f"best cost ratio at validation iso-accuracy: {ratio}"
            parts.append(Part(1, name, text, np.nan, np.nan, np.nan, ISO_RULE, NOT_REPRODUCED))
            continue
        difference = paired_test_difference(measured, test, test_baselines, reference=False)
        if difference is None:
            raise ValueError(f"claims: the picked {objective} front point has no test evaluation")
        d = difference.difference
        text = f"{measured.value:.2f}x; test {format_test_difference(difference)}"
        parts.append(
            Part(
                1, name, text, d.estimate, d.low, d.high, ISO_RULE, _interval_verdict(d.low, d.high, -margin)
            )
        )
    return parts


def final_by_seed(hypervolume: pd.DataFrame, space: str, objective: str, algorithm: str) -> dict[int, float]:
    """Each seed's final hypervolume of one experiment (empty when it did not run)."""
    runs = hypervolume[
        (hypervolume["space"] == space)
        & (hypervolume["objective"] == objective)
        & (hypervolume["algorithm"] == algorithm)
    ]
    last = runs.sort_values("evaluations").groupby("seed").tail(1)
    return {int(seed): float(value) for seed, value in zip(last["seed"], last["hypervolume"], strict=True)}


def algorithm_parts(hypervolume: pd.DataFrame) -> list[Part]:
    """Claim 2: LINAS minus NSGA-II and minus random search, final joint-search hypervolume, per objective."""
    parts = []
    for objective in OBJECTIVES:
        linas = final_by_seed(hypervolume, "joint", objective, LINAS)
        for peer in PEERS:
            name = f"{objective}: {LINAS} - {peer}"
            other = final_by_seed(hypervolume, "joint", objective, peer)
            if not linas or not other:
                parts.append(_not_run(2, name, DIFFERENCE_RULE))
                continue
            parts.append(_difference_part(2, name, paired_seed_difference(linas, other)))
    return parts


def space_parts(hypervolume: pd.DataFrame) -> list[Part]:
    """Claim 3: joint minus quantization-only final hypervolume (LINAS, same normalization), per objective."""
    parts = []
    for objective in OBJECTIVES:
        name = f"{objective}: joint - quant ({LINAS})"
        joint = final_by_seed(hypervolume, "joint", objective, LINAS)
        quant = final_by_seed(hypervolume, "quant", objective, LINAS)
        if not joint or not quant:
            parts.append(_not_run(3, name, DIFFERENCE_RULE))
            continue
        parts.append(_difference_part(3, name, paired_seed_difference(joint, quant)))
    # an objective with no ablation at all is no part of the claim unless none has one
    run = [part for part in parts if part.verdict != NOT_RUN]
    return run or parts


def population_hypervolume(run: pd.DataFrame, objective: str, normalization: Normalization) -> float:
    cost = COST_COLUMN[objective]
    return hypervolume(run[["accuracy", cost]].to_numpy(dtype=float), (True, False), normalization)


def progression_parts(evaluations: pd.DataFrame, normalizations: Mapping[str, Any]) -> list[Part]:
    """Claim 4: per seed, the hypervolume of LINAS's last population alone minus that of its first (the
    seeded initial population), in the objective's normalization; a t interval over seeds."""
    parts = []
    for objective in OBJECTIVES:
        name = f"{objective}: last - first population ({LINAS}, joint)"
        runs = evaluations[
            (evaluations["space"] == "joint")
            & (evaluations["objective"] == objective)
            & (evaluations["algorithm"] == LINAS)
        ]
        if runs.empty:
            parts.append(_not_run(4, name, DIFFERENCE_RULE))
            continue
        normalization = Normalization.from_dict(normalizations[objective])
        last, first = {}, {}
        for seed, run in runs.groupby("seed"):
            first[int(seed)] = population_hypervolume(
                run[run["iteration"] == run["iteration"].min()], objective, normalization
            )
            last[int(seed)] = population_hypervolume(
                run[run["iteration"] == run["iteration"].max()], objective, normalization
            )
        parts.append(_difference_part(4, name, paired_seed_difference(last, first)))
    return parts


def claim_verdict(parts: Sequence[Part]) -> str:
    """All parts reproduced: reproduced; any not reproduced: not reproduced; nothing run: not run;
    otherwise not resolved."""
    verdicts = [part.verdict for part in parts]
    if all(v == NOT_RUN for v in verdicts):
        return NOT_RUN
    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return NOT_RESOLVED


def claims_table(
    network: str,
    evaluations: pd.DataFrame,
    baselines: pd.DataFrame,
    hypervolume_table: pd.DataFrame,
    normalizations: Mapping[str, Any],
    test: pd.DataFrame,
    test_baselines: pd.DataFrame,
    margin: float,
) -> pd.DataFrame:
    """One row per part of each of the four claims, with the claim's verdict beside each part's."""
    parts = [
        *iso_accuracy_parts(evaluations, baselines, test, test_baselines, margin),
        *algorithm_parts(hypervolume_table),
        *space_parts(hypervolume_table),
        *progression_parts(evaluations, normalizations),
    ]
    rows = []
    for number, text in CLAIMS.items():
        own = [part for part in parts if part.claim == number]
        verdict = claim_verdict(own)
        rows += [
            {
                "network": network,
                "claim": number,
                "statement": text,
                "claim_verdict": verdict,
                "part": part.part,
                "measured": part.measured,
                "estimate": part.estimate,
                "ci95_low": part.low,
                "ci95_high": part.high,
                "verdict": part.verdict,
                "rule": part.rule,
                "iso_accuracy_margin_pp": margin * 100,
            }
            for part in own
        ]
    return pd.DataFrame(rows)


def claims_markdown(table: pd.DataFrame) -> str:
    """A verdict per network and claim, then every measured part with its interval and rule."""
    verdicts = table.drop_duplicates(["network", "claim"])[["network", "claim", "statement", "claim_verdict"]]
    details = table[["network", "claim", "part", "measured", "verdict"]]
    rules = "\n".join(f"- {rule}" for rule in dict.fromkeys(table["rule"]))
    margin = table["iso_accuracy_margin_pp"].iloc[0] if len(table) else float("nan")
    return (
        verdicts.to_markdown(index=False)
        + "\n\n"
        + details.to_markdown(index=False)
        + f"\n\nRules (iso-accuracy margin {margin:.2f} pp; hypervolumes in one fixed normalization per "
        "objective, seeds paired; test intervals: paired bootstrap over test samples):\n" + rules + "\n"
    )
