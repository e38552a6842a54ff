"""The final LINAS latency front across host profiles: which networks, per-host normalization, ranks."""

from __future__ import annotations

import pandas as pd
import pytest

from simqnas.config import FRONT_SEARCH
from simqnas.host_front import FRONT_COLUMNS, HOST_COLUMNS, host_comparison, latency_front
from simqnas.plots import host_figures


def evaluation(seed, key, accuracy, normalized, *, algorithm="linas", objective="latency", space="joint"):
    return {
        "space": space,
        "objective": objective,
        "algorithm": algorithm,
        "seed": seed,
        "evaluation": 0,
        "genome": f"[{key}]",
        "quality_key": f"q{key}",
        "accuracy": accuracy,
        "size_bytes": 1000 + key,
        "host": "a",
        "latency_ms": normalized * 10,
        "normalized_latency": normalized,
    }


@pytest.fixture
def evaluations() -> pd.DataFrame:
    return pd.DataFrame(
        [
            evaluation(0, 1, 0.80, 0.5),  # fast, less accurate: front
            evaluation(0, 2, 0.85, 0.9),  # front
            evaluation(0, 3, 0.70, 0.95),  # dominated by 1 and 2
            evaluation(1, 2, 0.85, 0.9),  # the same network found by seed 1: counted once
            evaluation(1, 4, 0.90, 1.2),  # front, from the other seed
            evaluation(0, 5, 0.99, 0.1, algorithm="nsga2"),  # other algorithms are not LINAS's front
            evaluation(0, 6, 0.99, 0.1, objective="size"),
            evaluation(0, 7, 0.99, 0.1, space="quant"),
        ]
    )


def test_front_is_linas_joint_latency_seeds_pooled(evaluations):
    front = latency_front(evaluations, FRONT_SEARCH)
    assert list(front.columns) == FRONT_COLUMNS
    assert front["quality_key"].tolist() == ["q1", "q2", "q4"]  # fastest first
    assert front["member"].tolist() == [0, 1, 2]
    assert front["seed"].tolist() == [0, 0, 1]
    assert front["search_normalized_latency"].tolist() == [0.5, 0.9, 1.2]
    assert set(front["search_host"]) == {"a"}


def test_front_needs_a_latency_search(evaluations):
    with pytest.raises(ValueError, match="no evaluations of a LINAS joint"):
        latency_front(evaluations[evaluations["objective"] == "size"], FRONT_SEARCH)
    broken = evaluations.copy()
    broken.loc[0, "normalized_latency"] = float("nan")
    with pytest.raises(ValueError, match="without accuracy or normalized latency"):
        latency_front(broken, FRONT_SEARCH)


def measured(latencies_ms: list[float], host: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "candidate": range(len(latencies_ms)),
            "latency_ms": latencies_ms,
            "latency_std_ms": 0.1,
            "host": host,
            "cpu_model": f"cpu of {host}",
            "node": f"node-{host}",
            "node_features": host,
        }
    )


def test_each_host_is_normalized_by_its_own_baseline_and_ranked(evaluations):
    front = latency_front(evaluations, FRONT_SEARCH)  # accuracies 0.80, 0.85, 0.90
    table = host_comparison(
        front,
        {"a": measured([5.0, 9.0, 12.0], "a"), "b": measured([30.0, 20.0, 25.0], "b")},
        {"a": 10.0, "b": 20.0},
    )
    a = table[table["host"] == "a"].set_index("member")
    b = table[table["host"] == "b"].set_index("member")
    assert a["normalized_latency"].tolist() == [0.5, 0.9, 1.2]
    assert b["normalized_latency"].tolist() == [1.5, 1.0, 1.25]
    assert a["rank"].tolist() == [1, 2, 3]
    assert b["rank"].tolist() == [3, 1, 2]  # the ranking moved on host b
    # on b, member 0 is slower and less accurate than member 1: off the front there
    assert a["on_front"].tolist() == [True, True, True]
    assert b["on_front"].tolist() == [False, True, True]
    assert (b["baseline_int8_ms"] == 20.0).all() and (b["node"] == "node-b").all()
    assert (table["search_host"] == "a").all()


def test_every_host_must_measure_every_member_and_have_a_baseline(evaluations):
    front = latency_front(evaluations, FRONT_SEARCH)
    with pytest.raises(ValueError, match=r"host b did not measure front members \[2\]"):
        host_comparison(front, {"b": measured([1.0, 2.0], "b")}, {"b": 1.0})
    with pytest.raises(ValueError, match="no all-INT8 baseline latency for host b"):
        host_comparison(front, {"b": measured([1.0, 2.0, 3.0], "b")}, {"a": 1.0})


@pytest.mark.parametrize("hosts", [["a"], ["a", "b"]])
def test_figure_has_a_colour_per_host(evaluations, hosts, tmp_path):
    front = latency_front(evaluations, FRONT_SEARCH)
    latencies = {host: measured([5.0 + i, 9.0, 12.0 - i], host) for i, host in enumerate(hosts)}
    table = host_comparison(front, latencies, dict.fromkeys(hosts, 10.0))
    written = host_figures("bert", table, tmp_path)
    assert sorted(p.name for p in written) == ["hosts_latency_front.pdf", "hosts_latency_front.png"]
    assert all(p.stat().st_size > 10_000 for p in written)


def test_a_search_whose_every_latency_stayed_unstable_has_an_empty_front_said_so(evaluations, tmp_path):
    """Every LINAS latency unstable (a machine busy for the whole search): the front is empty, nothing is
    measured on the hosts, and the host figure says why, instead of the workflow failing at its end."""
    linas = (evaluations["algorithm"] == "linas") & (evaluations["objective"] == "latency")
    stable, unstable = evaluations[~linas], evaluations[linas]
    front = latency_front(stable, FRONT_SEARCH, unstable=unstable)
    assert front.empty and list(front.columns) == FRONT_COLUMNS
    with pytest.raises(ValueError, match="no evaluations of a LINAS joint"):  # not run at all: a bug
        latency_front(stable, FRONT_SEARCH, unstable=unstable.iloc[0:0])
    table = host_comparison(front, {}, {"a": 10.0})
    assert table.empty and list(table.columns) == HOST_COLUMNS
    paths = host_figures("bert", table, tmp_path)
    assert all(path.stat().st_size > 1000 for path in paths)
