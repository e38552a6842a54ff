"""CPU latency that survives a busy machine: warm-up, many timed runs, robust statistics, a stability gate
that re-measures (interleaved with the reference the latency is normalized by); the host profiles it is
measured on, and the machine that measured it.

The reported latency is the **median** of the timed runs, with the interquartile range (IQR, p25..p75) as its
spread: a disturbance (another process, a preemption, frequency drops) that hits fewer than half of the runs
cannot move the median outside the undisturbed runs' range, while a 5% trimmed mean (LINAS's statistic, kept
as `mean` for provenance) follows any disturbance that hits more than 5% of them. A measurement whose
relative IQR (IQR / median) exceeds the host's `stability.max_relative_iqr`, or whose median is more than
`stability.max_median_over_min` times its fastest run (every run slowed alike), is measured again, up to
`stability.max_attempts` times, alternating blocks of candidate and reference runs so that a disturbance
hits both; one that stays above the threshold is recorded as unstable (`GatedLatency.stable`), and the
summaries leave it out of fronts, hypervolumes and headline claims (docs/latency.md).

Every latency record carries `host_info()`: latencies are only comparable on the same CPU, thread count and
software, and normalized latency divides by the all-INT8 baseline measured on the same host. Under SLURM it
also names the node and the node's features as SLURM reports them, so a host profile can refuse a node that
is not of its kind (`HostProfile.check_machine`).
"""

from __future__ import annotations

import math
import os
import platform
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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

#: the stability gate's defaults (config: `hosts.<name>.stability`; docs/latency.md says why these)
DEFAULT_MAX_RELATIVE_IQR = 0.25
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_MEDIAN_OVER_MIN = 2.0
#: timed runs per block when a candidate and its reference alternate
BLOCK_RUNS = 10

Model = Callable[..., Any]
Inputs = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds. `median` is the reported latency (`reported`), `p25`..`p75` (IQR) and `mad` (median
    absolute deviation) its robust spread; `mean` (the trimmed mean LINAS reports), `std`, `p5`, `p95` and
    `min` are kept for provenance."""

    mean: float
    median: float
    std: float
    p5: float
    p95: float
    min: float
    n: int
    trim: float
    threads: int
    p25: float
    p75: float
    mad: float

    @property
    def reported(self) -> float:
        """The latency the results report: the median of the timed runs."""
        return self.median

    @property
    def iqr(self) -> float:
        return self.p75 - self.p25

    @property
    def relative_iqr(self) -> float:
        """IQR / median: the spread the stability gate judges (0 for identical runs)."""
        return self.iqr / self.median if self.median > 0 else math.inf

    @property
    def median_over_min(self) -> float:
        """Median / fastest run: how much slower than its best pass the reported latency is."""
        return self.median / self.min if self.min > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> LatencyStats:
        """Statistics as `to_dict` stored them (other keys, e.g. the measuring method, are ignored)."""
        return cls(**{name: record[name] for name in cls.__dataclass_fields__})

    def columns(self, prefix: str = "latency") -> dict[str, Any]:
        """Table columns: `{prefix}_ms` is the reported latency (median); the spread and provenance follow."""
        return {
            f"{prefix}_ms": self.reported,
            f"{prefix}_iqr_ms": self.iqr,
            f"{prefix}_relative_iqr": self.relative_iqr,
            f"{prefix}_median_over_min": self.median_over_min,
            f"{prefix}_mad_ms": self.mad,
            f"{prefix}_p5_ms": self.p5,
            f"{prefix}_p25_ms": self.p25,
            f"{prefix}_p75_ms": self.p75,
            f"{prefix}_p95_ms": self.p95,
            f"{prefix}_min_ms": self.min,
            f"{prefix}_mean_ms": self.mean,
            f"{prefix}_std_ms": self.std,
            f"{prefix}_runs": self.n,
        }


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on sorted data."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(times_ms: Sequence[float], *, trim: float, threads: int) -> LatencyStats:
    """Statistics of timed runs: median, quartiles and MAD; mean over the runs ranked within
    [trim, 1 - trim] (both ends cut)."""
    if not times_ms:
        raise ValueError("latency: no timed runs")
    if not 0 <= trim < 0.5:
        raise ValueError(f"latency: trim {trim} is not in [0, 0.5)")
    ordered = sorted(times_ms)
    cut = math.floor(len(ordered) * trim)
    kept = ordered[cut : len(ordered) - cut]
    median = statistics.median(ordered)
    return LatencyStats(
        mean=statistics.fmean(kept),
        median=median,
        std=statistics.pstdev(ordered),
        p5=_percentile(ordered, 0.05),
        p95=_percentile(ordered, 0.95),
        min=ordered[0],
        n=len(ordered),
        trim=trim,
        threads=threads,
        p25=_percentile(ordered, 0.25),
        p75=_percentile(ordered, 0.75),
        mad=statistics.median(abs(t - median) for t in ordered),
    )


def _check_counts(warmup: int, runs: int, threads: int) -> None:
    if warmup < 0 or runs < 1 or threads < 1:
        raise ValueError(f"latency: warmup {warmup}, runs {runs}, threads {threads}: need >= 0, >= 1, >= 1")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` (None: left as they are), the previous count restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def _timing(threads: int) -> Iterator[None]:
    """Inference mode (as deployed) on `threads` threads; the previous thread count is restored after."""
    with torch_threads(threads), torch.inference_mode():
        yield


def _timed_passes(model: Model, inputs: Inputs, runs: int) -> list[float]:
    """Milliseconds of `runs` consecutive forward passes."""
    times_ms = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        model(*inputs)
        times_ms.append((time.perf_counter_ns() - start) / 1e6)
    return times_ms


def measure_latency(
    model: Model,
    inputs: Inputs,
    *,
    warmup: int,
    runs: int,
    threads: int,
    trim: float = 0.05,
) -> LatencyStats:
    """Time `runs` forward passes of `model(*inputs)` after `warmup` untimed ones, on `threads` threads.

    The thread count is set for the measurement and restored afterwards; passes run under inference mode,
    as deployed. One measurement, no gate: `measure_latency_gated` re-measures an unstable one.
    """
    _check_counts(warmup, runs, threads)
    with _timing(threads):
        (times_ms,) = _measurement([(model, inputs)], warmup, runs, BLOCK_RUNS)
    return summarize(times_ms, trim=trim, threads=threads)


def load_average() -> tuple[float, float, float]:
    """The machine's 1-, 5- and 15-minute load averages (NaN where the OS does not report them); compare
    with `host_info()["usable_cpus"]`: above it, runnable work waits for a core."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return (math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class StabilityGate:
    """A measurement is stable when its relative IQR (IQR / median) is at most `max_relative_spread` and its
    median at most `max_median_over_min` times its fastest run; an unstable one is measured again,
    `max_attempts` measurements in all.

    The second bound catches what the IQR cannot: every run slowed alike (an OpenMP team sharing its cores
    with other work for the whole measurement), a narrow distribution around a wrong median. Disturbances
    only slow runs down, so the fastest run is the best estimate of an undisturbed pass.
    """

    max_relative_spread: float = DEFAULT_MAX_RELATIVE_IQR
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_median_over_min: float = DEFAULT_MAX_MEDIAN_OVER_MIN

    def __post_init__(self) -> None:
        if not self.max_relative_spread > 0 or self.max_attempts < 1 or not self.max_median_over_min >= 1:
            raise ValueError(
                f"latency stability: max_relative_iqr {self.max_relative_spread} must be > 0, max_attempts "
                f"{self.max_attempts} >= 1 and max_median_over_min {self.max_median_over_min} >= 1"
            )

    @classmethod
    def from_config(cls, host: Mapping[str, Any]) -> StabilityGate:
        """The gate of a host profile (`hosts.<name>` in the config; its `stability` keys are optional)."""
        spec = host.get("stability") or {}
        return cls(
            spec.get("max_relative_iqr", DEFAULT_MAX_RELATIVE_IQR),
            spec.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
            spec.get("max_median_over_min", DEFAULT_MAX_MEDIAN_OVER_MIN),
        )

    def excess(self, *stats: LatencyStats) -> float:
        """How far the worst of `stats` (a candidate's, and its reference's) is from the gate: its largest
        statistic divided by the bound (at most 1: within the gate)."""
        return max(
            max(s.relative_iqr / self.max_relative_spread, s.median_over_min / self.max_median_over_min)
            for s in stats
        )

    def passes(self, *stats: LatencyStats) -> bool:
        """Whether every one of `stats` is within the gate."""
        return self.excess(*stats) <= 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_relative_iqr": self.max_relative_spread,
            "max_attempts": self.max_attempts,
            "max_median_over_min": self.max_median_over_min,
        }


@dataclass(frozen=True)
class GatedLatency:
    """A gated measurement: the candidate's statistics, the reference's from the same interleaved rounds
    (None without a reference), how many measurements it took and the largest relative IQR of each
    (`spreads`), whether it passed the gate, and the load averages (1, 5, 15 min) before and after."""

    stats: LatencyStats
    reference: LatencyStats | None
    attempts: int
    stable: bool
    gate: StabilityGate
    spreads: tuple[float, ...]
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]

    @property
    def reference_ratio(self) -> float:
        """Candidate / reference median from the same rounds (NaN without a reference)."""
        return self.stats.reported / self.reference.reported if self.reference else math.nan

    def columns(self, prefix: str = "latency") -> dict[str, Any]:
        """The table columns a latency job writes: the candidate's statistics (`LatencyStats.columns`), then
        `{prefix}_stable`, `{prefix}_attempts`, the reference's median, IQR and the candidate / reference
        ratio from the same rounds (NaN without a reference), and the 1-minute load average before and
        after."""
        reference = self.reference
        return {
            **self.stats.columns(prefix),
            f"{prefix}_stable": self.stable,
            f"{prefix}_attempts": self.attempts,
            f"{prefix}_reference_ms": reference.reported if reference else math.nan,
            f"{prefix}_reference_iqr_ms": reference.iqr if reference else math.nan,
            f"{prefix}_reference_ratio": self.reference_ratio,
            f"{prefix}_load_start": self.load_start[0],
            f"{prefix}_load_end": self.load_end[0],
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (`from_dict` reads it back)."""
        return {
            "stats": self.stats.to_dict(),
            "reference": self.reference.to_dict() if self.reference else None,
            "attempts": self.attempts,
            "stable": self.stable,
            "gate": self.gate.to_dict(),
            "spreads": list(self.spreads),
            "load_start": list(self.load_start),
            "load_end": list(self.load_end),
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> GatedLatency:
        reference = record["reference"]
        return cls(
            stats=LatencyStats.from_dict(record["stats"]),
            reference=LatencyStats.from_dict(reference) if reference else None,
            attempts=record["attempts"],
            stable=record["stable"],
            gate=StabilityGate.from_config({"stability": record["gate"]}),
            spreads=tuple(record["spreads"]),
            load_start=tuple(record["load_start"]),
            load_end=tuple(record["load_end"]),
        )


def _measurement(
    networks: Sequence[tuple[Model, Inputs]], warmup: int, runs: int, block: int
) -> list[list[float]]:
    """`runs` timed passes of each (model, inputs) after `warmup` untimed ones of each. Several networks
    alternate in blocks of `block` runs, each block after one untimed pass, so that no network pays for
    another having evicted its weights from the caches; one network runs straight through."""
    for _ in range(warmup):
        for model, inputs in networks:
            model(*inputs)
    if len(networks) == 1:
        model, inputs = networks[0]
        return [_timed_passes(model, inputs, runs)]
    times: list[list[float]] = [[] for _ in networks]
    for start in range(0, runs, block):
        for timed, (model, inputs) in zip(times, networks, strict=True):
            model(*inputs)
            timed += _timed_passes(model, inputs, min(block, runs - start))
    return times


def measure_latency_gated(
    model: Model,
    inputs: Inputs,
    *,
    warmup: int,
    runs: int,
    threads: int,
    trim: float = 0.05,
    gate: StabilityGate,
    reference: Model | None = None,
    reference_inputs: Inputs | None = None,
    block: int = BLOCK_RUNS,
) -> GatedLatency:
    """Measure `model(*inputs)` as `measure_latency` does, through the stability gate.

    With a `reference` (the all-INT8 network the latency is normalized by; `reference_inputs` default to
    `inputs`) every measurement times both, alternating blocks of `block` runs, so that a disturbance hits
    both and their ratio holds. A measurement passes when the candidate's statistics (and the
    reference's) are within the gate; otherwise it is repeated, up to `gate.max_attempts` measurements.
    The result holds the first one that passed, or, when none did, the least unstable one (smallest
    `gate.excess`) with `stable=False`.
    """
    _check_counts(warmup, runs, threads)
    if block < 1:
        raise ValueError(f"latency: block {block}: need >= 1")
    networks = [(model, inputs)]
    if reference is not None:
        networks.append((reference, inputs if reference_inputs is None else reference_inputs))
    load_start = load_average()
    measured: list[list[LatencyStats]] = []
    with _timing(threads):
        while len(measured) < gate.max_attempts:
            times = _measurement(networks, warmup, runs, block)
            measured.append([summarize(t, trim=trim, threads=threads) for t in times])
            if gate.passes(*measured[-1]):
                break
    stable = gate.passes(*measured[-1])
    final = measured[-1] if stable else min(measured, key=lambda m: gate.excess(*m))
    return GatedLatency(
        stats=final[0],
        reference=final[1] if reference is not None else None,
        attempts=len(measured),
        stable=stable,
        gate=gate,
        spreads=tuple(_worst_relative_iqr(m) for m in measured),
        load_start=load_start,
        load_end=load_average(),
    )


def _worst_relative_iqr(measurement: Sequence[LatencyStats]) -> float:
    return max(stats.relative_iqr for stats in measurement)


def repeatability(measurements: Sequence[LatencyStats]) -> dict[str, float]:
    """How well separate measurements of one model agree, for the reported statistic (the median) and for
    the trimmed mean reported before: the relative range ((max - min) / median of the values) and the
    coefficient of variation of each, over the measurements (e.g. the same model timed in 5 jobs)."""
    if len(measurements) < 2:
        raise ValueError(f"latency repeatability: {len(measurements)} measurements, need at least 2")
    spread = {}
    for name, values in (
        ("median", [m.median for m in measurements]),
        ("trimmed_mean", [m.mean for m in measurements]),
    ):
        centre = statistics.median(values)
        spread[f"{name}_relative_range"] = (max(values) - min(values)) / centre
        spread[f"{name}_cv"] = statistics.stdev(values) / statistics.fmean(values)
    return spread


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


#: how long a latency job waits for SLURM to describe its node (scontrol retries an unreachable controller)
SCONTROL_TIMEOUT_S = 60


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
        out = subprocess.run(command, capture_output=True, text=True, timeout=SCONTROL_TIMEOUT_S)
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
    gate: StabilityGate = StabilityGate()

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
    #: the stability gate's settings (`StabilityGate.from_config`); None: its defaults
    stability: Mapping[str, Any] | None = None

    @property
    def gate(self) -> StabilityGate:
        return StabilityGate.from_config({"stability": self.stability})

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
            gate=self.gate,
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
            "statistic": "median",
            "gate": self.gate.to_dict(),
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
