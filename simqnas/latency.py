"""Batch-1 CPU latency as LINAS measures it (warm-up, many timed runs, 5%..95% trimmed mean), and the host.

Every latency record carries `host_info()`: latencies are only comparable on the same CPU, thread count and
software, and normalized latency divides by the all-INT8 baseline measured on the same host.
"""

from __future__ import annotations

import math
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

#: CPU flags that decide which INT8/BF16 kernels oneDNN can use
ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds; `mean` is the trimmed mean (LINAS's statistic), the rest describe the spread."""

    mean: float
    median: float
    std: float
    p5: float
    p95: float
    min: float
    n: int
    trim: float
    threads: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on sorted data."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(times_ms: Sequence[float], *, trim: float, threads: int) -> LatencyStats:
    """Statistics of timed runs: mean over the runs ranked within [trim, 1 - trim] (both ends cut)."""
    if not times_ms:
        raise ValueError("latency: no timed runs")
    if not 0 <= trim < 0.5:
        raise ValueError(f"latency: trim {trim} is not in [0, 0.5)")
    ordered = sorted(times_ms)
    cut = math.floor(len(ordered) * trim)
    kept = ordered[cut : len(ordered) - cut]
    return LatencyStats(
        mean=statistics.fmean(kept),
        median=statistics.median(ordered),
        std=statistics.pstdev(ordered),
        p5=_percentile(ordered, 0.05),
        p95=_percentile(ordered, 0.95),
        min=ordered[0],
        n=len(ordered),
        trim=trim,
        threads=threads,
    )


def measure_latency(
    model: Callable[..., Any],
    inputs: tuple[torch.Tensor, ...],
    *,
    warmup: int,
    runs: int,
    threads: int,
    trim: float = 0.05,
) -> LatencyStats:
    """Time `runs` forward passes of `model(*inputs)` after `warmup` untimed ones, on `threads` threads.

    The thread count is set for the measurement and restored afterwards; passes run under inference mode,
    as deployed.
    """
    if warmup < 0 or runs < 1 or threads < 1:
        raise ValueError(f"latency: warmup {warmup}, runs {runs}, threads {threads}: need >= 0, >= 1, >= 1")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(*inputs)
            times_ms = []
            for _ in range(runs):
                start = time.perf_counter_ns()
                model(*inputs)
                times_ms.append((time.perf_counter_ns() - start) / 1e6)
    finally:
        torch.set_num_threads(previous)
    return summarize(times_ms, trim=trim, threads=threads)


def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (empty off Linux)."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return {}
    info: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def host_info() -> dict[str, Any]:
    """The machine and software a latency was measured with."""
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu.get("model name") or platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
