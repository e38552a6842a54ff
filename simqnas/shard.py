"""Evaluation jobs: a shard of an iteration's candidates, or an iteration's latency on a host profile.

One job is one process: the super-network, the space and the data are loaded once (`EvaluationContext`),
then every candidate only pays its own extract / quantize / measure. Every result is stored content-addressed
(`EvaluationStore`), keyed by everything that changes the numbers, so any algorithm, seed or rerun that meets
the same network and policy again reads it instead of recomputing it; a killed job loses only the candidate
it was working on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from simqnas.data import load_split
from simqnas.evalstore import EvaluationStore, evaluation_key, safetensors_sha256
from simqnas.evaluate import (
    EvaluationSettings,
    LatencySettings,
    accuracy,
    batches,
    deployable_subnetwork,
    evaluate_candidate,
)
from simqnas.latency import host_info, measure_latency
from simqnas.quantize import compile_for_inference, model_size_bytes
from simqnas.space import SearchSpace
from simqnas.supernets import load_supernet
from simqnas.supernets.base import Arch, SuperNetwork

log = logging.getLogger(__name__)


@dataclass
class EvaluationContext:
    """Everything a job loads once: the super-network, its (sub)space, calibration and validation data."""

    supernet: SuperNetwork
    space: SearchSpace
    calibration: dict[str, torch.Tensor]
    validation: dict[str, torch.Tensor]
    settings: EvaluationSettings
    #: content hashes and settings that, with a candidate, determine its numbers
    provenance: dict[str, Any]

    @classmethod
    def load(
        cls,
        supernet_path: str | Path,
        space_path: str | Path,
        space_kind: str,
        calibration_path: str | Path,
        validation_path: str | Path,
        settings: EvaluationSettings,
    ) -> EvaluationContext:
        supernet = load_supernet(supernet_path).eval()
        space = SearchSpace.from_yaml(space_path).subspace(space_kind)
        required = supernet.input_names
        provenance = {
            "supernet": safetensors_sha256(supernet_path),
            "calibration": safetensors_sha256(calibration_path),
            "validation": safetensors_sha256(validation_path),
            "calibration_batch_size": settings.calibration_batch_size,
            "eval_batch_size": settings.eval_batch_size,
        }
        return cls(
            supernet,
            space,
            load_split(calibration_path, required),
            load_split(validation_path, required),
            settings,
            provenance,
        )

    @classmethod
    def from_job(
        cls, files: Mapping[str, str], space_kind: str, supernet_spec: Mapping[str, Any]
    ) -> EvaluationContext:
        """The context of a rule whose inputs name `supernet`, `space`, `calibration` and `validation`."""
        return cls.load(
            files["supernet"],
            files["space"],
            space_kind,
            files["calibration"],
            files["validation"],
            evaluation_settings(supernet_spec),
        )

    def candidate(self, genome: np.ndarray) -> tuple[Arch, dict[str, str]]:
        """The network a genome stands for: genes a shallower depth drops are canonicalized away, so
        genomes of one and the same network share their evaluations."""
        config = self.space.decode(self.space.canonical(genome))
        policy = config.pop("quantization")
        return config, policy

    def quality_fields(self, arch: Arch, policy: Mapping[str, str]) -> dict[str, Any]:
        return {"metric": "quality", "arch": arch, "policy": dict(policy), **self.provenance}


def _number_problem(name: str, value: Any, low: float, high: float = math.inf) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} {value!r} is not a number"
    if not math.isfinite(value) or not low <= value <= high:
        return f"{name} {value!r} is not a finite number within [{low}, {high}]"
    return None


def quality_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with an accuracy-and-size record (None if nothing): NaN, negative, out of range."""
    return _number_problem("accuracy", record.get("accuracy"), 0.0, 1.0) or _number_problem(
        "size_bytes", record.get("size_bytes"), 1.0
    )


def latency_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with a latency record (None if nothing): missing statistics, NaN, negative times."""
    stats = record.get("latency")
    if not isinstance(stats, Mapping) or not isinstance(record.get("host_info"), Mapping):
        return "no latency statistics or host_info"
    for name in ("mean", "std", "p5", "p95"):
        problem = _number_problem(f"latency {name}", stats.get(name), 0.0)
        if problem:
            return problem
    return None if stats["mean"] > 0 else "latency mean is 0"


def _store_checked(
    store: EvaluationStore,
    key: str,
    record: dict[str, Any],
    fields: dict[str, Any],
    check: Callable[[Mapping[str, Any]], str | None],
    index: int,
) -> None:
    """Store a fresh evaluation, refusing one that came back invalid (it would be reused forever)."""
    problem = check(record)
    if problem:
        raise ValueError(f"candidate {index}: the evaluation returned {problem}; not stored")
    store.put(key, record, fields=fields)


def evaluate_quality(
    context: EvaluationContext, genomes: Iterable[tuple[int, np.ndarray]], store: EvaluationStore
) -> pd.DataFrame:
    """Accuracy (on the quantized model) and exact size of each (candidate index, genome)."""
    rows = []
    for index, genome in genomes:
        arch, policy = context.candidate(genome)
        fields = context.quality_fields(arch, policy)
        key = evaluation_key(**fields)
        record = store.get(key, check=quality_problem)
        cached = record is not None
        if record is None:
            result = evaluate_candidate(
                context.supernet, arch, policy, context.calibration, context.validation, context.settings
            )
            record = {
                "accuracy": result["accuracy"],
                "size_bytes": result["size_bytes"],
                "timings_s": result["timings_s"],
            }
            _store_checked(store, key, record, fields, quality_problem, index)
        log.info(
            "candidate %d: accuracy %.4f size %d bytes (%s)",
            index,
            record["accuracy"],
            record["size_bytes"],
            "cached" if cached else f"{sum(record['timings_s'].values()):.1f} s",
        )
        rows.append(
            {
                "candidate": index,
                "accuracy": record["accuracy"],
                "size_bytes": record["size_bytes"],
                "quality_key": key,
                "quality_cached": cached,
            }
        )
    return pd.DataFrame(
        rows, columns=["candidate", "accuracy", "size_bytes", "quality_key", "quality_cached"]
    )


class WrongHostError(RuntimeError):
    """A latency job landed on a machine that is not of its host profile's kind; nothing was measured."""


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
    def from_config(cls, spec: Mapping[str, Any]) -> HostProfile:
        fields = {k: spec[k] for k in cls.__dataclass_fields__ if k in spec}
        return cls(**fields)

    def settings(self) -> LatencySettings:
        return LatencySettings(warmup=self.warmup, runs=self.runs, threads=self.threads, trim=self.trim)

    def check_machine(self, info: Mapping[str, Any]) -> None:
        """Refuse to measure on the wrong kind of node: its numbers would be filed under this host.

        A profile with a `feature` needs a SLURM node that SLURM says carries it (outside SLURM, or when the
        node's features cannot be read, nothing vouches for the machine); a `cpu_model` must be part of the
        CPU model lscpu reports. Raises WrongHostError with one line naming the host, node and mismatch.
        """
        machine = info.get("hostname")
        slurm = info.get("slurm")
        if self.feature:
            if not slurm:
                raise WrongHostError(
                    f"host {self.name}: refusing to measure on {machine}: the profile needs a SLURM node "
                    f"with feature {self.feature!r}, and this job does not run under SLURM (no "
                    "SLURMD_NODENAME); run it with --profile profiles/slurm"
                )
            node = slurm.get("node")
            if slurm.get("features") is None:
                raise WrongHostError(
                    f"host {self.name}: refusing to measure on SLURM node {node}: cannot read its features "
                    f"to check for {self.feature!r} ({slurm.get('error')})"
                )
            if self.feature not in slurm["features"]:
                raise WrongHostError(
                    f"host {self.name}: refusing to measure on SLURM node {node}: it has features "
                    f"{slurm['features']}, not {self.feature!r}"
                )
            machine = f"SLURM node {node}"
        if self.cpu_model and self.cpu_model not in str(info.get("cpu_model", "")):
            raise WrongHostError(
                f"host {self.name}: refusing to measure on {machine}: expected a CPU model containing "
                f"{self.cpu_model!r}, lscpu says {info.get('cpu_model')!r}"
            )

    def checked_machine(self) -> dict[str, Any]:
        """The machine this process runs on (`host_info`), if it is of this profile's kind."""
        info = host_info()
        self.check_machine(info)
        return info

    @classmethod
    def for_latency_job(cls, spec: Mapping[str, Any]) -> HostProfile:
        """The profile of a latency job, checked against this node before anything loads: a wrong node ends
        the job in seconds with the one-line reason (SystemExit), not a traceback."""
        host = cls.from_config(spec)
        try:
            host.checked_machine()
        except WrongHostError as error:
            raise SystemExit(str(error)) from None
        return host

    def key_fields(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "warmup": self.warmup,
            "runs": self.runs,
            "trim": self.trim,
        }


def machine_columns(info: Mapping[str, Any]) -> dict[str, Any]:
    """Where a latency was measured, as table columns: CPU model, SLURM node and its features (`;`-joined;
    empty outside SLURM)."""
    slurm = info.get("slurm") or {}
    return {
        "cpu_model": info.get("cpu_model"),
        "node": slurm.get("node") or "",
        "node_features": ";".join(slurm.get("features") or []),
    }


def measure_latencies(
    context: EvaluationContext,
    genomes: Iterable[tuple[int, np.ndarray]],
    host: HostProfile,
    store: EvaluationStore,
) -> pd.DataFrame:
    """Compiled INT8 end-to-end latency at the host's batch size for each (candidate index, genome), with
    the host profile, CPU model and (under SLURM) node and node features it was measured on."""
    info = host.checked_machine()
    settings = EvaluationSettings(
        context.settings.calibration_batch_size, context.settings.eval_batch_size, host.settings()
    )
    rows = []
    for index, genome in genomes:
        arch, policy = context.candidate(genome)
        fields = {**context.quality_fields(arch, policy), "metric": "latency", **host.key_fields()}
        key = evaluation_key(**fields)
        record = store.get(key, check=latency_problem)
        cached = record is not None
        if record is None:
            result = evaluate_candidate(
                context.supernet,
                arch,
                policy,
                context.calibration,
                context.validation,
                settings,
                measure_accuracy=False,
            )
            record = {"latency": result["latency"], "host_info": info, "timings_s": result["timings_s"]}
            _store_checked(store, key, record, fields, latency_problem, index)
        stats = record["latency"]
        log.info(
            "candidate %d: latency %.3f ms +- %.3f (%s)",
            index,
            stats["mean"],
            stats["std"],
            "cached" if cached else "measured",
        )
        rows.append(
            {
                "candidate": index,
                "latency_ms": stats["mean"],
                "latency_std_ms": stats["std"],
                "latency_p5_ms": stats["p5"],
                "latency_p95_ms": stats["p95"],
                "host": host.name,
                **machine_columns(record["host_info"]),
                "latency_key": key,
                "latency_cached": cached,
            }
        )
    return pd.DataFrame(rows)


def shard_members(genomes: np.ndarray, shard: int, shards: int) -> list[tuple[int, np.ndarray]]:
    """Candidates shard, shard + shards, ... of an iteration (round robin, so shards get even loads)."""
    return [(i, genomes[i]) for i in range(shard, len(genomes), shards)]


def evaluation_settings(supernet_spec: Mapping[str, Any]) -> EvaluationSettings:
    """Calibration and accuracy-pass settings of a configured super-network."""
    return EvaluationSettings(
        calibration_batch_size=supernet_spec["calibration"]["batch_size"],
        eval_batch_size=supernet_spec["evaluation"]["batch_size"],
    )


def full_network_policy(context: EvaluationContext, precision: str) -> dict[str, str]:
    """Every searched layer at `precision` (fixed layers keep theirs: `evaluate_candidate` adds them)."""
    return dict.fromkeys(context.supernet.quantizable_layers(), precision)


def evaluate_baseline(context: EvaluationContext, precision: str) -> dict[str, Any]:
    """The full super-network in FP32, or with every quantizable layer INT8 (the paper's reference point)."""
    arch = context.supernet.largest_arch()
    policy = full_network_policy(context, precision)
    if precision == "int8":
        result = evaluate_candidate(
            context.supernet, arch, policy, context.calibration, context.validation, context.settings
        )
        return {"accuracy": result["accuracy"], "size_bytes": result["size_bytes"], "precision": precision}
    network = deployable_subnetwork(
        context.supernet, arch, context.calibration, context.settings.calibration_batch_size
    )
    return {
        "accuracy": accuracy(
            network, context.validation, context.supernet.input_names, context.settings.eval_batch_size
        ),
        "size_bytes": model_size_bytes(network, policy),
        "precision": precision,
    }


def baseline_latency(context: EvaluationContext, precision: str, host: HostProfile) -> dict[str, Any]:
    """Compiled end-to-end latency of the full super-network, all-INT8 or FP32, on a host profile."""
    info = host.checked_machine()
    arch = context.supernet.largest_arch()
    if precision == "int8":
        settings = EvaluationSettings(
            context.settings.calibration_batch_size, context.settings.eval_batch_size, host.settings()
        )
        result = evaluate_candidate(
            context.supernet,
            arch,
            full_network_policy(context, precision),
            context.calibration,
            context.validation,
            settings,
            measure_accuracy=False,
        )
        stats = result["latency"]
    else:
        network = deployable_subnetwork(
            context.supernet, arch, context.calibration, context.settings.calibration_batch_size
        )
        one = next(batches(context.validation, context.supernet.input_names, 1))
        compiled = compile_for_inference(network, one)
        stats = measure_latency(
            compiled, one, warmup=host.warmup, runs=host.runs, threads=host.threads, trim=host.trim
        ).to_dict()
    return {
        "precision": precision,
        "host": host.name,
        "latency_ms": stats["mean"],
        "latency": stats,
        "host_info": info,
    }
