"""CPU latency as LINAS measures it (warm-up, many timed runs, trimmed statistics), the host profiles it is
measured on, and the machine that measured it.

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
from collections.abc import Callable, Mapping, Sequence
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


#: how latency is measured: "compiled" INC INT8 model through Inductor (end-to-end, what results report)
#: or "eager_int8" torch.ao eager INT8 model (no compile: a search-time estimate, see simqnas.eager_int8)
LATENCY_METHODS = ("compiled", "eager_int8")


@dataclass(frozen=True)
class LatencySettings:
    """How one latency is timed: `batch_size` samples a call, `threads` intra-op threads (set before the
    compile: Inductor bakes the thread count into the kernels it generates)."""

    warmup: int
    runs: int
    threads: int
    trim: float = 0.05
    method: str = "compiled"
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.method not in LATENCY_METHODS:
            raise ValueError(f"latency method {self.method!r} is not one of {', '.join(LATENCY_METHODS)}")


class WrongHostError(RuntimeError):
    """A latency job landed on a machine that is not of its host profile's kind; nothing was measured."""


def pin_process(threads: int, pin: bool) -> list[int]:
    """Set this process's intra-op threads and, with `pin`, its CPU affinity to the first `threads` CPUs
    it may use; returns the CPUs it now runs on. Call it before any model loads or compiles: OpenMP
    threads started later inherit the affinity, and Inductor reads the thread count at compile time."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if pin and allowed:
        if len(allowed) < threads:
            raise WrongHostError(
                f"pin_threads: {threads} threads wanted, but this process may run on {len(allowed)} CPUs only"
            )
        allowed = allowed[:threads]
        os.sched_setaffinity(0, allowed)
    torch.set_num_threads(threads)
    return allowed


@dataclass(frozen=True)
class HostProfile:
    """A latency host profile from the config, checked against the machine the job runs on."""

    name: str
    threads: int
    warmup: int
    runs: int
    trim: float
    batch_size: int = 1
    cpu_model: str | None = None
    feature: str | None = None
    pin_threads: bool = True

    @classmethod
    def from_config(cls, spec: Mapping[str, object]) -> HostProfile:
        return cls(**{k: spec[k] for k in cls.__dataclass_fields__ if k in spec})  # type: ignore[arg-type]

    def settings(self, method: str = "compiled") -> LatencySettings:
        return LatencySettings(
            warmup=self.warmup,
            runs=self.runs,
            threads=self.threads,
            trim=self.trim,
            method=method,
            batch_size=self.batch_size,
        )

    def check_machine(self, info: Mapping[str, object]) -> None:
        """Refuse to measure on the wrong kind of node: its numbers would be filed under this host.

        A profile with a `feature` needs a SLURM node that SLURM says carries it (outside SLURM, or when the
        node's features cannot be read, nothing vouches for the machine); a `cpu_model` must be part of the
        CPU model lscpu reports. Raises WrongHostError with one line naming the host, node and mismatch.
        """
        machine = info.get("hostname")
        slurm = info.get("slurm")
        if self.feature:
            if not isinstance(slurm, Mapping):
                raise WrongHostError(
                    f"host {self.name}: refusing to measure on {machine}: the profile needs a SLURM node "
                    f"with feature {self.feature!r}, and this job does not run under SLURM (no "
                    "SLURMD_NODENAME); run it with --profile profiles/slurm"
                )
            node = slurm.get("node")
            features = slurm.get("features")
            if features is None:
                raise WrongHostError(
                    f"host {self.name}: refusing to measure on SLURM node {node}: cannot read its features "
                    f"to check for {self.feature!r} ({slurm.get('error')})"
                )
            if self.feature not in features:  # type: ignore[operator]
                raise WrongHostError(
                    f"host {self.name}: refusing to measure on SLURM node {node}: it has features "
                    f"{features}, not {self.feature!r}"
                )
            machine = f"SLURM node {node}"
        if self.cpu_model and self.cpu_model not in str(info.get("cpu_model", "")):
            raise WrongHostError(
                f"host {self.name}: refusing to measure on {machine}: expected a CPU model containing "
                f"{self.cpu_model!r}, lscpu says {info.get('cpu_model')!r}"
            )

    def checked_machine(self) -> dict[str, object]:
        """The machine this process runs on (`host_info`), if it is of this profile's kind."""
        info = host_info()
        self.check_machine(info)
        return info

    @classmethod
    def for_latency_job(cls, spec: Mapping[str, object]) -> tuple[HostProfile, dict[str, object]]:
        """The profile of a latency job and the machine, checked before anything loads (a wrong node ends the
        job in seconds with the one-line reason, SystemExit, not a traceback), with the process pinned to
        the profile's threads (`pin_process`; the CPUs are recorded in the machine's `cpus`)."""
        host = cls.from_config(spec)
        try:
            info = host.checked_machine()
            info["cpus"] = pin_process(host.threads, host.pin_threads)
        except WrongHostError as error:
            raise SystemExit(str(error)) from None
        return host, info

    def key_fields(self, cpu_model: object) -> dict[str, object]:
        """What, besides the candidate, determines a latency on this profile: the settings and the CPU."""
        return {
            "host": self.name,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "pin_threads": self.pin_threads,
            "warmup": self.warmup,
            "runs": self.runs,
            "trim": self.trim,
            "cpu_model": cpu_model,
        }


def machine_columns(info: Mapping[str, object]) -> dict[str, object]:
    """Where a latency was measured, as table columns: CPU model, SLURM node and its features (`;`-joined;
    empty outside SLURM)."""
    slurm = info.get("slurm") or {}
    assert isinstance(slurm, Mapping)
    return {
        "cpu_model": info.get("cpu_model"),
        "node": slurm.get("node") or "",
        "node_features": ";".join(slurm.get("features") or []),  # type: ignore[arg-type]
    }
