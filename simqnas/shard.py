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

from simqnas.candidate import (
    EVALUATION_RECIPE,
    EvaluationSettings,
    PhaseTimer,
    compile_checked,
    deployable_subnetwork,
    evaluate_candidate,
    full_network_policy,
    number_problem,
    quantize_subnetwork,
    subnetwork_policy,
    time_latency,
    timed_inputs,
)
from simqnas.data import load_split
from simqnas.evalstore import EvaluationStore, evaluation_key, safetensors_sha256
from simqnas.history import QUALITY_COLUMNS
from simqnas.latency import HostProfile, machine_columns
from simqnas.space import SearchSpace
from simqnas.supernets import load_supernet
from simqnas.supernets.base import Arch, SuperNetwork

log = logging.getLogger(__name__)


def software_versions() -> dict[str, str]:
    """The versions that change what a quantized model computes and how fast: part of every key."""
    from importlib.metadata import version

    return {"torch": torch.__version__, "neural_compressor": version("neural-compressor")}


@dataclass
class EvaluationContext:
    """Everything a job loads once: the super-network, its (sub)space, calibration and validation data."""

    supernet: SuperNetwork
    space: SearchSpace
    calibration: dict[str, torch.Tensor]
    validation: dict[str, torch.Tensor]
    settings: EvaluationSettings
    #: content hashes, settings, software and recipe versions that, with a candidate, determine its numbers
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
            "recipe": EVALUATION_RECIPE,
            **software_versions(),
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

    def latency_fields(
        self, arch: Arch, policy: Mapping[str, str], host: HostProfile, machine: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            **self.quality_fields(arch, policy),
            "metric": "latency",
            "method": "compiled",
            **host.key_fields(machine.get("cpu_model")),
        }

    def evaluate(
        self, arch: Arch, policy: Mapping[str, str], host: HostProfile | None, *, measure_accuracy: bool
    ) -> dict[str, Any]:
        """One pass over a candidate: size, and accuracy and/or latency on `host` (one quantization)."""
        settings = EvaluationSettings(
            self.settings.calibration_batch_size,
            self.settings.eval_batch_size,
            host.settings() if host else None,
        )
        return evaluate_candidate(
            self.supernet,
            arch,
            policy,
            self.calibration,
            self.validation,
            settings,
            measure_accuracy=measure_accuracy,
        )


def quality_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with an accuracy-and-size record (None if nothing): NaN, negative, out of range."""
    size = record.get("size_bytes")
    problem = number_problem("accuracy", record.get("accuracy"), 0.0, 1.0) or number_problem(
        "size_bytes", size, 1.0
    )
    return problem or (None if float(size).is_integer() else f"size_bytes {size!r} is not a whole number")


def latency_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with a latency record (None if nothing): missing statistics, NaN, negative times."""
    stats = record.get("latency")
    if not isinstance(stats, Mapping) or not isinstance(record.get("host_info"), Mapping):
        return "no latency statistics or host_info"
    for name in ("mean", "std", "p5", "p95"):
        problem = number_problem(f"latency {name}", stats.get(name), 0.0)
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


def _quality_row(index: int, record: Mapping[str, Any], key: str, cached: bool) -> dict[str, Any]:
    return {
        "candidate": index,
        "accuracy": record["accuracy"],
        "size_bytes": record["size_bytes"],
        "quality_key": key,
        "quality_cached": cached,
    }


def _log_quality(index: int, record: Mapping[str, Any], cached: bool) -> None:
    log.info(
        "candidate %d: accuracy %.4f size %d bytes (%s)",
        index,
        record["accuracy"],
        record["size_bytes"],
        "cached" if cached else f"{sum(record['timings_s'].values()):.1f} s",
    )


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
            result = context.evaluate(arch, policy, None, measure_accuracy=True)
            record = {k: result[k] for k in ("accuracy", "size_bytes", "timings_s")}
            _store_checked(store, key, record, fields, quality_problem, index)
        _log_quality(index, record, cached)
        rows.append(_quality_row(index, record, key, cached))
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


def _latency_row(
    index: int, record: Mapping[str, Any], key: str, cached: bool, host: HostProfile
) -> dict[str, Any]:
    stats = record["latency"]
    return {
        "candidate": index,
        "latency_ms": stats["mean"],
        "latency_std_ms": stats["std"],
        "latency_p5_ms": stats["p5"],
        "latency_p95_ms": stats["p95"],
        "host": host.name,
        **machine_columns(record["host_info"]),
        "reference_ms": record.get("reference_ms", math.nan),
        "latency_key": key,
        "latency_cached": cached,
    }


class ReferenceTiming:
    """The all-INT8 full network (what latencies are normalized by), compiled once in a latency job and
    timed when the job starts measuring and when it ends: every latency the job measures records the
    baseline's latency on the machine at that time, so drift between jobs, and within one, is on file."""

    def __init__(self, context: EvaluationContext, host: HostProfile) -> None:
        supernet = context.supernet
        self.settings = host.settings()
        network = deployable_subnetwork(
            supernet, supernet.largest_arch(), context.calibration, context.settings.calibration_batch_size
        )
        policy = subnetwork_policy(
            network, {**supernet.fixed_precisions(), **full_network_policy(supernet, "int8")}
        )
        qmodel = quantize_subnetwork(
            network,
            policy,
            context.calibration,
            supernet.input_names,
            context.settings.calibration_batch_size,
            supernet.variable_dims(),
        )
        self.inputs = timed_inputs(context.validation, supernet.input_names, self.settings.batch_size)
        self.model, _ = compile_checked(qmodel, self.inputs, policy, self.settings.threads, PhaseTimer())

    def time(self) -> float:
        """The baseline's latency now (ms, the statistic candidates report)."""
        return float(time_latency(self.model, self.inputs, self.settings)["mean"])


def measure_on_host(
    context: EvaluationContext,
    genomes: Iterable[tuple[int, np.ndarray]],
    host: HostProfile,
    machine: Mapping[str, Any],
    store: EvaluationStore,
    *,
    with_quality: bool,
) -> pd.DataFrame:
    """Compiled INT8 end-to-end latency on `host` (the machine this job runs on, checked) of each
    (candidate index, genome), with the host, CPU model and (under SLURM) node it was measured on and the
    all-INT8 baseline timed in the same job (`reference_ms`); `with_quality` adds accuracy and size.

    What the store holds is read; a candidate missing both its quality and its latency is quantized once
    for both. The baseline is compiled only when something is to be measured, and timed again at the end
    of the job (logged: the drift within the job).
    """
    todo = []
    for index, genome in genomes:
        arch, policy = context.candidate(genome)
        quality_fields = context.quality_fields(arch, policy)
        latency_fields = context.latency_fields(arch, policy, host, machine)
        quality_key, latency_key = evaluation_key(**quality_fields), evaluation_key(**latency_fields)
        quality = store.get(quality_key, check=quality_problem) if with_quality else None
        latency = store.get(latency_key, check=latency_problem)
        todo.append(
            (index, arch, policy, quality_fields, quality_key, quality, latency_fields, latency_key, latency)
        )
    reference = ReferenceTiming(context, host) if any(item[-1] is None for item in todo) else None
    reference_start = reference.time() if reference else math.nan
    rows = []
    for (
        index,
        arch,
        policy,
        quality_fields,
        quality_key,
        quality,
        latency_fields,
        latency_key,
        latency,
    ) in todo:
        row: dict[str, Any] = {}
        need_quality = with_quality and quality is None
        if need_quality or latency is None:
            result = context.evaluate(
                arch, policy, host if latency is None else None, measure_accuracy=need_quality
            )
            if need_quality:
                quality = {k: result[k] for k in ("accuracy", "size_bytes", "timings_s")}
                _store_checked(store, quality_key, quality, quality_fields, quality_problem, index)
            if latency is None:
                latency = {
                    "latency": result["latency"],
                    "host_info": dict(machine),
                    "reference_ms": reference_start,
                    "timings_s": result["timings_s"],
                }
                _store_checked(store, latency_key, latency, latency_fields, latency_problem, index)
                row["latency_cached"] = False
        if with_quality:
            _log_quality(index, quality, not need_quality)
            row = {**_quality_row(index, quality, quality_key, not need_quality), **row}
        log.info(
            "candidate %d: latency %.3f ms +- %.3f",
            index,
            latency["latency"]["mean"],
            latency["latency"]["std"],
        )
        rows.append({**_latency_row(index, latency, latency_key, "latency_cached" not in row, host), **row})
    if reference:
        log.info(
            "all-INT8 baseline in this job: %.3f ms at the start, %.3f ms at the end",
            reference_start,
            reference.time(),
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


def evaluate_baseline(context: EvaluationContext, precision: str) -> dict[str, Any]:
    """The full super-network with every layer FP32, or every searched layer INT8 (the paper's reference
    point): a candidate like any other, measured through the same path."""
    supernet = context.supernet
    result = context.evaluate(
        supernet.largest_arch(), full_network_policy(supernet, precision), None, measure_accuracy=True
    )
    return {"accuracy": result["accuracy"], "size_bytes": result["size_bytes"], "precision": precision}


def baseline_latency(
    context: EvaluationContext, precision: str, host: HostProfile, machine: Mapping[str, Any]
) -> dict[str, Any]:
    """Compiled end-to-end latency of the full super-network, all-INT8 or FP32, on a host profile."""
    supernet = context.supernet
    result = context.evaluate(
        supernet.largest_arch(), full_network_policy(supernet, precision), host, measure_accuracy=False
    )
    stats = result["latency"]
    return {
        "precision": precision,
        "host": host.name,
        "latency_ms": stats["mean"],
        "latency": stats,
        "host_info": dict(machine),
    }
