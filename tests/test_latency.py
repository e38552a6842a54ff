"""simqnas.latency: robust statistics on known timings, known workloads through the stability gate, the
host record; the summaries and figures that leave unstable latencies out and draw the spread.

(tests/test_latency_disturbed.py times a compiled model while other processes load its core.)
"""

from __future__ import annotations

import json
import math
import random
import runpy
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from snakemake.iocontainers import Namedlist

from simqnas import latency
from simqnas.config import ConfigError, check_config
from simqnas.latency import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_MEDIAN_OVER_MIN,
    DEFAULT_MAX_RELATIVE_IQR,
    GatedLatency,
    LatencyStats,
    StabilityGate,
    host_info,
    load_average,
    measure_latency,
    measure_latency_gated,
    parse_node_features,
    repeatability,
    slurm_node,
    summarize,
)
from simqnas.plots import (
    SPREAD_LABEL,
    accuracy_vs_cost,
    host_latency_front,
    latency_spread,
    search_progression,
)
from simqnas.summary import hypervolume_table, split_unstable_latency


def test_summary_of_a_known_timing_list_trims_both_ends() -> None:
    times = [float(t) for t in range(100)]  # 0..99 ms
    random.Random(0).shuffle(times)
    times[times.index(99.0)] = 1e6  # a preempted run: trimmed away
    times[times.index(0.0)] = -1e6  # (and a symmetric one at the other end)
    stats = summarize(times, trim=0.05, threads=2)
    assert stats.mean == pytest.approx(sum(range(5, 95)) / 90)  # ranks 5..94 kept
    assert stats.median == pytest.approx(49.5)
    assert stats.p5 == pytest.approx(4.95)
    assert stats.p95 == pytest.approx(94.05)
    assert stats.min == -1e6
    assert (stats.n, stats.threads, stats.trim) == (100, 2, 0.05)
    assert stats.std > 1e5  # the spread is reported untrimmed
    # the robust spread: quartiles, IQR, MAD; the two wild runs move none of them
    assert (stats.p25, stats.p75) == (pytest.approx(24.75), pytest.approx(74.25))
    assert stats.iqr == pytest.approx(49.5) and stats.relative_iqr == pytest.approx(1.0)
    assert stats.mad == pytest.approx(25.0)
    assert stats.reported == stats.median


def test_the_median_holds_where_the_trimmed_mean_follows_a_disturbance() -> None:
    # 30 of 200 runs disturbed (15%, beyond the 5% trim): the mean moves 10x, the median not at all
    times = [1.0 + 0.001 * i for i in range(170)] + [100.0] * 30
    stats = summarize(times, trim=0.05, threads=1)
    assert stats.mean > 10
    assert stats.median == pytest.approx(1.0995)
    assert stats.relative_iqr < 0.2  # the quartiles still lie among the undisturbed runs


def test_columns_name_the_reported_latency_and_its_spread() -> None:
    stats = summarize([1.0, 2.0, 3.0, 4.0, 10.0], trim=0.0, threads=1)
    columns = stats.columns()
    assert columns["latency_ms"] == 3.0  # the median, not the mean (4.0)
    assert columns["latency_mean_ms"] == 4.0
    assert (columns["latency_p25_ms"], columns["latency_p75_ms"], columns["latency_iqr_ms"]) == (
        2.0,
        4.0,
        2.0,
    )
    assert columns["latency_relative_iqr"] == pytest.approx(2 / 3)
    assert columns["latency_runs"] == 5
    assert set(stats.columns("search_latency")) == {f"search_{name}" for name in columns}
    assert LatencyStats.from_dict({**stats.to_dict(), "method": "compiled"}) == stats


def test_no_trim_is_the_plain_mean_and_small_samples_keep_everything() -> None:
    assert summarize([1.0, 2.0, 6.0], trim=0.0, threads=1).mean == 3.0
    assert summarize([1.0, 2.0, 6.0], trim=0.05, threads=1).mean == 3.0  # floor(3 * 0.05) = 0 cut


@pytest.mark.parametrize(("times", "trim"), [([], 0.05), ([1.0], 0.5), ([1.0], -0.1)])
def test_summary_rejects_bad_input(times: list[float], trim: float) -> None:
    with pytest.raises(ValueError, match="latency"):
        summarize(times, trim=trim, threads=1)


def test_a_sleeping_workload_measures_its_sleep() -> None:
    calls = []

    def workload(x: torch.Tensor) -> None:
        calls.append(torch.get_num_threads())
        time.sleep(0.002)

    before = torch.get_num_threads()
    stats = measure_latency(workload, (torch.zeros(1),), warmup=3, runs=20, threads=1)
    assert len(calls) == 23 and set(calls) == {1}
    assert torch.get_num_threads() == before
    assert stats.n == 20
    assert 2.0 <= stats.min <= stats.p5 <= stats.median <= stats.p95
    assert 2.0 <= stats.mean < 50  # generous: CI machines are shared


def test_a_matmul_takes_longer_than_a_smaller_one() -> None:
    big, small = torch.randn(256, 256), torch.randn(16, 16)
    slow = measure_latency(torch.mm, (big, big), warmup=2, runs=30, threads=1)
    fast = measure_latency(torch.mm, (small, small), warmup=2, runs=30, threads=1)
    assert slow.median > fast.median


# ------------------------------------------------------------------------------ the stability gate


def sleeper(milliseconds: Callable[[int], float]) -> Callable[[torch.Tensor], None]:
    """A workload whose i-th call sleeps `milliseconds(i)` (sleeps hold on a busy machine: no CPU needed)."""
    calls = [0]

    def workload(x: torch.Tensor) -> None:
        time.sleep(milliseconds(calls[0]) / 1000)
        calls[0] += 1

    return workload


ROOT = Path(__file__).resolve().parents[1]
X = (torch.zeros(1),)
GATE = StabilityGate(max_relative_spread=0.5, max_attempts=3)


def test_the_gate_comes_from_the_host_profile_with_defaults() -> None:
    assert StabilityGate.from_config({"threads": 2}) == StabilityGate(
        DEFAULT_MAX_RELATIVE_IQR, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_MEDIAN_OVER_MIN
    )
    gate = StabilityGate.from_config(
        {"threads": 2, "stability": {"max_relative_iqr": 0.05, "max_attempts": 5}}
    )
    assert (gate.max_relative_spread, gate.max_attempts) == (0.05, 5)
    with pytest.raises(ValueError, match="max_attempts 0"):
        StabilityGate.from_config({"stability": {"max_attempts": 0}})


def test_the_schema_states_the_gates_defaults() -> None:
    host = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())["$defs"]["host"]
    stability = host["properties"]["stability"]["properties"]
    assert stability["max_relative_iqr"]["default"] == DEFAULT_MAX_RELATIVE_IQR
    assert stability["max_attempts"]["default"] == DEFAULT_MAX_ATTEMPTS
    assert stability["max_median_over_min"]["default"] == DEFAULT_MAX_MEDIAN_OVER_MIN


@pytest.mark.parametrize(
    ("stability", "key"),
    [
        ({"max_relative_iqr": 0}, "stability.max_relative_iqr"),
        ({"max_attempts": 0}, "stability.max_attempts"),
        ({"max_median_over_min": 0.5}, "stability.max_median_over_min"),
        ({"max_iqr": 0.1}, "stability"),
    ],
)
def test_a_bad_gate_in_the_config_names_its_key(stability: dict, key: str) -> None:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["hosts"]["local"]["stability"] = stability
    with pytest.raises(ConfigError, match=f"config: hosts.local.{key}"):
        check_config(config, base=ROOT)


def test_a_steady_workload_passes_the_gate_at_once() -> None:
    result = measure_latency_gated(sleeper(lambda i: 2.0), X, warmup=2, runs=20, threads=1, gate=GATE)
    assert result.stable and result.attempts == 1 and len(result.spreads) == 1
    assert 2.0 <= result.stats.reported < 50 and result.reference is None
    assert math.isnan(result.reference_ratio)


def test_a_bimodal_workload_is_measured_again_then_flagged_unstable() -> None:
    # every other run 6x slower: the IQR spans both modes in every measurement
    result = measure_latency_gated(
        sleeper(lambda i: 1.0 if i % 2 else 6.0), X, warmup=2, runs=20, threads=1, gate=GATE
    )
    assert not result.stable
    assert result.attempts == GATE.max_attempts == len(result.spreads)
    assert min(result.spreads) > GATE.max_relative_spread
    assert result.stats.relative_iqr in result.spreads  # one of the measurements: the least unstable
    columns = result.columns()
    assert columns["latency_stable"] is False and columns["latency_attempts"] == 3


def test_a_disturbance_that_passes_is_measured_again_until_stable() -> None:
    # the first measurement (2 warm-up + 20 timed calls) is bimodal, the next one steady
    result = measure_latency_gated(
        sleeper(lambda i: 1.0 if i >= 22 or i % 2 else 6.0), X, warmup=2, runs=20, threads=1, gate=GATE
    )
    assert result.stable and result.attempts == 2
    assert result.spreads[0] > GATE.max_relative_spread >= result.spreads[1]
    assert result.stats.reported < 3.0


def test_every_run_slowed_alike_is_flagged_by_its_distance_from_the_fastest() -> None:
    # in every measurement 2 quick runs, then 18 5x slower: a narrow IQR around a median far above the fastest
    result = measure_latency_gated(
        sleeper(lambda i: 1.0 if i % 20 < 2 else 5.0), X, warmup=0, runs=20, threads=1, gate=GATE
    )
    assert result.stats.relative_iqr < GATE.max_relative_spread
    assert result.stats.median_over_min > GATE.max_median_over_min
    assert not result.stable and result.attempts == 3
    assert GATE.excess(result.stats) > 1


def test_the_reference_is_timed_in_alternating_blocks_and_gated_too() -> None:
    order: list[str] = []

    def network(name: str, milliseconds: Callable[[int], float]) -> Callable[[torch.Tensor], None]:
        sleep = sleeper(milliseconds)

        def workload(x: torch.Tensor) -> None:
            order.append(name)
            sleep(x)

        return workload

    candidate = network("c", lambda i: 1.0)
    reference = network("r", lambda i: 3.0)
    result = measure_latency_gated(
        candidate, X, reference=reference, warmup=2, runs=25, threads=1, gate=GATE, block=10
    )
    # warm-up pairs, then blocks of 10, 10 and 5 timed runs, each after one untimed pass
    blocks = "".join(name * (count + 1) for count in (10, 10, 5) for name in "cr")
    assert "".join(order) == "crcr" + blocks
    assert result.stable and result.reference is not None and result.reference.n == 25
    assert 0.2 < result.reference_ratio < 0.5  # 1 ms against 3 ms (sleeps overshoot a little)
    # an unstable reference makes the measurement unstable: the ratio would not hold
    order.clear()
    bimodal = network("r", lambda i: 1.0 if i % 2 else 6.0)
    flagged = measure_latency_gated(
        network("c", lambda i: 1.0), X, reference=bimodal, warmup=0, runs=10, threads=1, gate=GATE
    )
    assert not flagged.stable and flagged.attempts == 3 and flagged.stats.relative_iqr < 0.5


def test_a_gated_measurement_round_trips_through_json() -> None:
    result = measure_latency_gated(
        sleeper(lambda i: 1.0), X, reference=sleeper(lambda i: 2.0), warmup=1, runs=10, threads=1, gate=GATE
    )
    again = GatedLatency.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    columns = again.columns()
    assert columns["latency_reference_ms"] == result.reference.median
    assert columns["latency_load_start"] == result.load_start[0]
    assert set(columns) >= {
        "latency_ms",
        "latency_iqr_ms",
        "latency_p5_ms",
        "latency_p95_ms",
        "latency_stable",
    }


def test_repeatability_compares_the_median_with_the_trimmed_mean() -> None:
    quiet = [1.0 + 0.01 * i for i in range(80)]
    # three jobs: one undisturbed, two with 15% and 20% of their runs disturbed (beyond the 5% trim)
    jobs = [quiet + quiet[:20], quiet + [50.0] * 15 + quiet[:5], quiet + [50.0] * 20]
    spread = repeatability([summarize(times, trim=0.05, threads=1) for times in jobs])
    assert spread["median_relative_range"] < 0.2 < 1 < spread["trimmed_mean_relative_range"]
    assert spread["median_cv"] < spread["trimmed_mean_cv"]
    with pytest.raises(ValueError, match="at least 2"):
        repeatability([summarize(quiet, trim=0.05, threads=1)])


def test_load_average_is_the_machines() -> None:
    loads = load_average()
    assert len(loads) == 3 and all(load >= 0 for load in loads)


def test_host_info_names_the_machine_and_software() -> None:
    info = host_info()
    assert info["cpu_model"] and info["hostname"]
    assert info["torch"] == torch.__version__
    assert info["logical_cpus"] >= info["usable_cpus"] >= 1
    assert isinstance(info["isa"], list)


# `scontrol show node -o NAME` as slurm-wlm 22.05 prints it (shortened)
SCONTROL_NODE = (
    "NodeName=node8380 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=0.41 "
    "AvailableFeatures=xeon8380,avx512 ActiveFeatures=xeon8380,avx512 Gres=(null) NodeAddr=127.0.0.1 "
    "NodeHostName=ci Version=22.05.8 OS=Linux 6.1.0 RealMemory=23000 State=IDLE Partitions=main"
)


def test_node_features_as_scontrol_reports_them() -> None:
    assert parse_node_features(SCONTROL_NODE) == ["avx512", "xeon8380"]
    no_features = SCONTROL_NODE.replace("xeon8380,avx512", "(null)")
    assert parse_node_features(no_features) == []
    # ActiveFeatures is what --constraint matches (changeable features may be inactive)
    inactive = SCONTROL_NODE.replace("ActiveFeatures=xeon8380,avx512", "ActiveFeatures=avx512")
    assert parse_node_features(inactive) == ["avx512"]
    with pytest.raises(ValueError, match="no features"):
        parse_node_features("NodeName=x State=IDLE")


def test_outside_slurm_there_is_no_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURMD_NODENAME", raising=False)
    assert host_info()["slurm"] is None
    assert slurm_node() is None


def test_a_node_slurm_does_not_know_has_unknown_features(monkeypatch: pytest.MonkeyPatch) -> None:
    # SLURM down, not installed, or a node it does not know: the features stay unknown, with the reason
    monkeypatch.setenv("SLURMD_NODENAME", "no-such-node-simqnas")
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")
    # where scontrol is installed it retries the missing controller until the timeout: keep that short
    monkeypatch.setattr(latency, "SCONTROL_TIMEOUT_S", 3)
    node = slurm_node()
    assert node is not None and node["node"] == "no-such-node-simqnas"
    assert node["features"] is None and "scontrol" in node["error"]


# ------------------------------------------------------------------------------ summaries and figures


def latency_run(stable: list[object]) -> pd.DataFrame:
    """One LINAS latency run: evaluation i has accuracy 0.7 + 0.01 i and latency 8 + i ms (all on the front),
    IQR +-1 ms, normalized by a 10 ms baseline; `stable` per evaluation."""
    n = len(stable)
    latency = 8.0 + np.arange(n)
    return pd.DataFrame(
        {
            "space": "joint",
            "objective": "latency",
            "algorithm": "linas",
            "seed": 0,
            "evaluation": range(n),
            "host": "local",
            "accuracy": 0.7 + 0.01 * np.arange(n),
            "size_mb": 1.0,
            "latency_ms": latency,
            "latency_p25_ms": latency - 1,
            "latency_p75_ms": latency + 1,
            "normalized_latency": latency / 10,
            "latency_stable": stable,
        }
    )


def test_unstable_latencies_are_split_off_and_old_tables_count_as_stable(tmp_path) -> None:
    run = latency_run([True, False, True])
    size = run.assign(objective="size", latency_stable=np.nan, latency_ms=np.nan)
    path = tmp_path / "evaluations.csv"
    pd.concat([size, run]).to_csv(path, index=False)  # as written: True/False beside empty
    stable, unstable = split_unstable_latency(pd.read_csv(path))
    assert len(stable) == 5 and list(unstable["evaluation"]) == [1]
    assert list(unstable["objective"]) == ["latency"]
    kept, none = split_unstable_latency(run.drop(columns="latency_stable"))
    assert len(kept) == 3 and none.empty


def test_the_summary_rule_lists_unstable_latencies_apart(tmp_path) -> None:
    def write_json(name: str, record: dict) -> str:
        (tmp_path / name).write_text(json.dumps(record))
        return str(tmp_path / name)

    run = tmp_path / "run.csv"
    latency_run([True, False, True]).drop(columns="normalized_latency").assign(size_bytes=1e6).to_csv(
        run, index=False
    )
    files = {
        "fp32": write_json("fp32.json", {"accuracy": 0.8, "size_bytes": 4e6}),
        "int8": write_json("int8.json", {"accuracy": 0.79, "size_bytes": 1e6}),
        "latency_local_int8": write_json("lat_int8.json", {"latency_ms": 10.0}),
        "latency_local_fp32": write_json("lat_fp32.json", {"latency_ms": 20.0}),
        "data": write_json("data.json", {"splits": {"validation": {"positive_fraction": 0.5}}}),
        "runs": [str(run)],
        "references": [],
    }
    outputs = {
        name: str(tmp_path / "summary" / f"{name}.{'json' if name == 'normalization' else 'csv'}")
        for name in (
            "evaluations",
            "baselines",
            "hypervolume",
            "final_hypervolume",
            "normalization",
            "unstable_latency",
        )
    }
    smk = SimpleNamespace(
        input=Namedlist(fromdict=files),
        output=Namedlist(fromdict=outputs),
        params=SimpleNamespace(references=[]),
        wildcards=SimpleNamespace(net="tiny"),
        log=[str(tmp_path / "summarize.log")],
    )
    runpy.run_path(str(ROOT / "scripts" / "summarize_net.py"), init_globals={"snakemake": smk})
    evaluations = pd.read_csv(outputs["evaluations"])
    unstable = pd.read_csv(outputs["unstable_latency"])
    assert list(evaluations["evaluation"]) == [0, 2] and list(unstable["evaluation"]) == [1]
    assert unstable["normalized_latency"].tolist() == [0.9]  # listed with everything it measured
    assert len(pd.read_csv(outputs["hypervolume"])) == 3  # it still spent an evaluation
    assert "1 evaluations with an unstable latency" in (tmp_path / "summarize.log").read_text()


def test_an_unstable_evaluation_spends_budget_but_adds_no_hypervolume() -> None:
    baselines = pd.DataFrame(
        [
            {"network": None, "baseline": "int8", "host": "local", "normalized_latency": 1.0},
            {"network": None, "baseline": "fp32", "host": "local", "normalized_latency": 2.0},
        ]
    )

    def hypervolume(run: pd.DataFrame) -> pd.DataFrame:
        return hypervolume_table(run, baselines, chance=0.5)[0]

    flagged = hypervolume(latency_run([True, False, True, True]))
    clean = hypervolume(latency_run([True, True, True]).drop(index=1))
    hv = list(flagged["hypervolume"])
    assert len(hv) == 4 and hv[1] == hv[0]  # evaluation 1 counts, adds nothing
    # the same as a run without it (one fixed normalization)
    stable = latency_run([True] * 4).drop(index=1)
    assert hv[2:] == pytest.approx(list(hypervolume(stable)["hypervolume"])[1:])
    assert len(clean) == 2


def test_front_points_carry_their_latency_iqr() -> None:
    run = latency_run([True] * 3)
    spread = latency_spread(run)
    assert spread.shape == (2, 3) and spread == pytest.approx(0.1)  # 1 ms of a 10 ms baseline
    baselines = pd.DataFrame(
        [{"baseline": "fp32", "host": "local", "accuracy": 0.8, "size_mb": 4.0, "normalized_latency": 2.5}]
    )
    for draw in (accuracy_vs_cost, search_progression):
        figure = draw(run, baselines, "latency", "t")
        bars = figure.axes[0].containers
        assert len(bars) == 1 and len(bars[0].lines[2][0].get_segments()) == 3, draw.__name__
        assert SPREAD_LABEL in figure.axes[0].get_legend_handles_labels()[1]
        plt.close(figure)
        # a table without quartiles (written before they were recorded) draws no bars
        figure = draw(run.drop(columns=["latency_p25_ms", "latency_p75_ms"]), baselines, "latency", "t")
        assert not figure.axes[0].containers
        plt.close(figure)


def test_each_hosts_front_carries_its_latency_iqr() -> None:
    rows = [
        {
            "host": host,
            "member": member,
            "accuracy": 0.7 + 0.01 * member,
            "latency_ms": scale * (8.0 + member),
            "latency_p25_ms": scale * (7.5 + member),
            "latency_p75_ms": scale * (8.5 + member),
            "normalized_latency": (8.0 + member) / 10,
            "rank": member + 1,
            "on_front": True,
        }
        for host, scale in (("a", 1.0), ("b", 2.0))
        for member in range(3)
    ]
    hosts = pd.DataFrame(rows)
    figure = host_latency_front(hosts, "t")
    bars = figure.axes[0].containers
    assert len(bars) == 2  # one per host
    widths = [np.ptp(segment[:, 0]) for bar in bars for segment in bar.lines[2][0].get_segments()]
    assert widths == pytest.approx([0.1] * 6)  # 1 ms of 10 (host a) and 2 of 20 (host b), normalized
    plt.close(figure)
