"""Batch-1 CPU latency as LINAS measures it (warm-up, many timed runs, 5%..95% trimmed mean), and the host.

Every latency record carries `host_info()`: latencies are only comparable on the same CPU, thread count and
software, and normalized latency divides by the all-INT8 baseline measured on the same host. Under SLURM it
also names the node and the node's features as SLURM reports them, so a host profile can refuse a node that
is not of its kind (`simqnas.shard.HostProfile.check_machine`).
"""

from __future__ import annotations

import math
import os
import platform
import socket
import statistics
import subprocess
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


def lscpu_model_name() -> str | None:
    """`Model name` as lscpu reports it (None where lscpu is missing or says nothing)."""
    try:
        out = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=30, env={**os.environ, "LC_ALL": "C"}
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name" and value.strip():
            return value.strip()
    return None


def parse_node_features(scontrol_node: str) -> list[str]:
    """The features a node offers, from one `scontrol show node -o NAME` line: `ActiveFeatures` (what
    `--constraint` matches), else `AvailableFeatures`; `(null)` means none."""
    fields = dict(part.split("=", 1) for part in scontrol_node.split() if "=" in part)
    features = fields.get("ActiveFeatures", fields.get("AvailableFeatures"))
    if features is None:
        raise ValueError(f"scontrol: no features in {scontrol_node.strip()[:200]!r}")
    return sorted(f for f in features.split(",") if f and f != "(null)")


def slurm_node() -> dict[str, Any] | None:
    """The SLURM node this process runs on and its features as SLURM reports them; None outside SLURM.

    `features` is None (and `error` says why) when SLURM cannot be asked; a host profile with a feature then
    refuses to measure rather than guess.
    """
    name = os.environ.get("SLURMD_NODENAME")
    if not name:
        return None
    node: dict[str, Any] = {
        "node": name,
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "features": None,
        "error": None,
    }
    command = ["scontrol", "show", "node", "-o", name]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            node["error"] = f"`{' '.join(command)}` failed: {(out.stderr or out.stdout).strip()[:300]}"
        else:
            node["features"] = parse_node_features(out.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as error:
        node["error"] = f"`{' '.join(command)}`: {error}"
    return node


def host_info() -> dict[str, Any]:
    """The machine and software a latency was measured with (and, under SLURM, the node and its features)."""
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    return {
        "hostname": socket.gethostname(),
        "cpu_model": lscpu_model_name()
        or cpu.get("model name")
        or platform.processor()
        or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "slurm": slurm_node(),
    }
