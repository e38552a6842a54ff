"""Evaluation jobs: a shard of an iteration's candidates, or an iteration's latency on a host profile.

One job is one process: the super-network, the space and the data are loaded once (`EvaluationContext`),
then every candidate only pays its own extract / quantize / measure. Every result is stored content-addressed
(`EvaluationStore`), keyed by everything that changes the numbers, so any algorithm, seed or rerun that meets
the same network and policy again reads it instead of recomputing it; a killed job loses only the candidate
it was working on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from simqnas.data import load_split
from simqnas.evalstore import EvaluationStore, evaluation_key, file_sha256
from simqnas.evaluate import (
    EvaluationSettings,
    LatencySettings,
    accuracy,
    batches,
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
            "supernet": file_sha256(supernet_path),
            "calibration": file_sha256(calibration_path),
            "validation": file_sha256(validation_path),
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


def evaluate_quality(
    context: EvaluationContext, genomes: Iterable[tuple[int, np.ndarray]], store: EvaluationStore
) -> pd.DataFrame:
    """Accuracy (on the quantized model) and exact size of each (candidate index, genome)."""
    rows = []
    for index, genome in genomes:
        arch, policy = context.candidate(genome)
        fields = context.quality_fields(arch, policy)
        key = evaluation_key(**fields)
        record = store.get(key)
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
            store.put(key, record, fields=fields)
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
        """Refuse to measure on the wrong kind of node: its numbers would be filed under this host."""
        if self.cpu_model and self.cpu_model not in str(info.get("cpu_model", "")):
            raise RuntimeError(
                f"host {self.name}: expected a CPU model containing {self.cpu_model!r}, "
                f"this node ({info.get('hostname')}) has {info.get('cpu_model')!r}"
            )

    def key_fields(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "warmup": self.warmup,
            "runs": self.runs,
            "trim": self.trim,
        }


def measure_latencies(
    context: EvaluationContext,
    genomes: Iterable[tuple[int, np.ndarray]],
    host: HostProfile,
    store: EvaluationStore,
) -> pd.DataFrame:
    """Compiled INT8 end-to-end latency at the host's batch size for each (candidate index, genome)."""
    info = host_info()
    host.check_machine(info)
    settings = EvaluationSettings(
        context.settings.calibration_batch_size, context.settings.eval_batch_size, host.settings()
    )
    rows = []
    for index, genome in genomes:
        arch, policy = context.candidate(genome)
        fields = {**context.quality_fields(arch, policy), "metric": "latency", **host.key_fields()}
        key = evaluation_key(**fields)
        record = store.get(key)
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
            store.put(key, record, fields=fields)
        stats = record["latency"]
        log.info("candidate %d: latency %.3f ms +- %.3f", index, stats["mean"], stats["std"])
        rows.append(
            {
                "candidate": index,
                "latency_ms": stats["mean"],
                "latency_std_ms": stats["std"],
                "latency_p5_ms": stats["p5"],
                "latency_p95_ms": stats["p95"],
                "host": host.name,
                "cpu_model": record["host_info"].get("cpu_model"),
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
    network = context.supernet.extract(arch).eval()
    return {
        "accuracy": accuracy(
            network, context.validation, context.supernet.input_names, context.settings.eval_batch_size
        ),
        "size_bytes": model_size_bytes(network, policy),
        "precision": precision,
    }


def baseline_latency(context: EvaluationContext, precision: str, host: HostProfile) -> dict[str, Any]:
    """Compiled end-to-end latency of the full super-network, all-INT8 or FP32, on a host profile."""
    info = host_info()
    host.check_machine(info)
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
        network = context.supernet.extract(arch).eval()
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
