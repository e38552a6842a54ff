"""The headline table: each family's claims from the paper, measured on a front against the INT8 baseline."""

from __future__ import annotations

import pandas as pd
import pytest

from simqnas.headline import PAPER_CLAIMS, headline_table

#: (accuracy, size MB, normalized latency) of a joint-search front; the INT8 baseline is (0.80, 10 MB, 1.0)
FRONT = [(0.78, 4.0, 0.4), (0.80, 5.0, 0.5), (0.82, 8.0, 0.8), (0.83, 12.5, 1.25)]


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        {
            "space": "joint",
            "objective": objective,
            "algorithm": "linas",
            "host": host,
            "accuracy": acc,
            cost: value,
        }
        for acc, size, latency in FRONT
        for objective, cost, value, host in (
            ("size", "size_mb", size, None),
            ("latency", "normalized_latency", latency, "local"),
        )
    ]
    baselines = pd.DataFrame(
        [
            {"baseline": "int8", "host": None, "accuracy": 0.80, "size_mb": 10.0},
            {"baseline": "int8", "host": "local", "accuracy": 0.80, "normalized_latency": 1.0},
        ]
    )
    return pd.DataFrame(rows), baselines


#: what each measure is on FRONT: at iso-accuracy (0.80) 10 MB / 5 MB and 1.0 / 0.5; the most accurate point
#: (0.83 at 12.5 MB, 1.25) against the baseline; the best accuracy at no more than 10 MB: 0.82
EXPECTED = {
    ("size reduction at iso-accuracy", "size"): 2.0,
    ("speed-up at iso-accuracy vs INT8 baseline", "latency"): 2.0,
    ("most accurate network: size reduction", "size"): 0.8,
    ("most accurate network: speed-up", "latency"): 0.8,
    ("slowest front configuration: speed-up", "latency"): 0.8,
    ("most accurate network: accuracy gain", "size"): 0.03,
    ("most accurate network: accuracy gain", "latency"): 0.03,
    ("slowest front configuration: accuracy gain", "latency"): 0.03,
    ("accuracy gain at the baseline's size", "size"): 0.02,
}


@pytest.mark.parametrize("family", ["bert", "vit", "multiway"])
def test_every_transformer_family_has_the_papers_claims_measured(family):
    evaluations, baselines = frames()
    table = headline_table(family, evaluations, baselines, tolerance=0.0)
    assert list(table["paper"]) == [claim.paper for claim in PAPER_CLAIMS[family]]
    for row in table.itertuples():
        assert row.linas_value == pytest.approx(EXPECTED[row.measure, row.objective]), row.measure
    gains = table[table["measure"].str.contains("gain")]
    assert gains["linas"].str.endswith("%").all() and gains["linas"].str.startswith("+").all()
    assert table[~table["measure"].str.contains("gain")]["linas"].str.endswith("x").all()
