"""simqnas.latency: trimmed statistics on known timings, a known workload, the host record."""

from __future__ import annotations

import random
import time

import pytest
import torch

from simqnas.latency import host_info, measure_latency, parse_node_features, slurm_node, summarize


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
    node = slurm_node()
    assert node is not None and node["node"] == "no-such-node-simqnas"
    assert node["features"] is None and "scontrol" in node["error"]
