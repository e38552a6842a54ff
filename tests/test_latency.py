"""simqnas.latency: trimmed statistics on known timings, a known workload, the host record."""

from __future__ import annotations

import random
import time

import pytest
import torch

from simqnas.latency import host_info, measure_latency, summarize


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
