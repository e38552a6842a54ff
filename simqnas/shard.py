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

from simqnas.candidate import (
    EVALUATION_RECIPE,
    EvaluationSettings,
    PhaseTimer,
    Reference,
    compile_checked,
    evaluate_candidate,
    full_network_policy,
    number_problem,
    quantized_candidate,
    timed_inputs,
)
from simqnas.data import load_split
from simqnas.evalstore import EvaluationStore, StoredEvaluation, safetensors_sha256
from simqnas.history import QUALITY_COLUMNS
from simqnas.latency import GatedLatency, HostProfile, machine_columns, torch_threads
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
    #: torch threads of calibration and the accuracy pass (the config's `threads`), None: the process's own.
    #: Float reductions split by thread count can flip a borderline prediction, so a stored accuracy must not
    #: depend on how many cores Snakemake gave the job (`--cores` below `threads` scales jobs down) or on
    #: which kind of job measured it; compile and timing set the host profile's threads themselves
    threads: int | None = None

    @classmethod
    def load(
        cls,
        supernet_path: str | Path,
        space_path: str | Path,
        space_kind: str,
        calibration_path: str | Path,
        validation_path: str | Path,
        settings: EvaluationSettings,
        threads: int | None = None,
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
            threads,
        )

    @classmethod
    def from_job(
        cls,
        files: Mapping[str, str],
        space_kind: str,
        supernet_spec: Mapping[str, Any],
        threads: int | None = None,
    ) -> EvaluationContext:
        """The context of a rule whose inputs name `supernet`, `space`, `calibration` and `validation`."""
        return cls.load(
            files["supernet"],
            files["space"],
            space_kind,
            files["calibration"],
            files["validation"],
            evaluation_settings(supernet_spec),
            threads,
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
        self,
        arch: Arch,
        policy: Mapping[str, str],
        host: HostProfile | None,
        *,
        measure_accuracy: bool,
        reference: Reference | None = None,
    ) -> dict[str, Any]:
        """One pass over a candidate: size, and accuracy and/or latency on `host` (one quantization;
        latency timed interleaved with `reference`), calibrated and scored at `threads`."""
        settings = EvaluationSettings(
            self.settings.calibration_batch_size,
            self.settings.eval_batch_size,
            host.settings() if host else None,
        )
        with torch_threads(self.threads):
            return evaluate_candidate(
                self.supernet,
                arch,
                policy,
                self.calibration,
                self.validation,
                settings,
                measure_accuracy=measure_accuracy,
                reference=reference,
            )


def quality_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with an accuracy-and-size record (None if nothing): NaN, negative, out of range."""
    size = record.get("size_bytes")
    problem = number_problem("accuracy", record.get("accuracy"), 0.0, 1.0) or number_problem(
        "size_bytes", size, 1.0
    )
    return problem or (None if float(size).is_integer() else f"size_bytes {size!r} is not a whole number")


def latency_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with a latency record (None if nothing): not a gated measurement (e.g. of an older
    recipe), NaN, negative or zero times."""
    if not isinstance(record.get("host_info"), Mapping):
        return "no host_info"
    try:
        gated = GatedLatency.from_dict(record.get("latency"))  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return f"no gated latency statistics ({type(error).__name__}: {error})"
    for name in ("median", "p25", "p75", "min", "mean"):
        problem = number_problem(f"latency {name}", getattr(gated.stats, name), 0.0)
        if problem:
            return problem
    return None if gated.stats.min > 0 else "latency of 0 ms"


#: what a quality record stores of an evaluation
QUALITY_RECORD = ("accuracy", "size_bytes", "timings_s")


def _quality_row(index: int, record: Mapping[str, Any], key: str, cached: bool) -> dict[str, Any]:
    return {
        "candidate": index,
        "accuracy": record["accuracy"],
        "size_bytes": record["size_bytes"],
        "quality_key": key,
        "quality_cached": cached,
    }


def _log_quality(label: str, index: int, record: Mapping[str, Any], cached: bool) -> None:
    log.info(
        "%scandidate %d: accuracy %.4f size %d bytes (%s)",
        f"{label} " if label else "",
        index,
        record["accuracy"],
        record["size_bytes"],
        "cached" if cached else f"{sum(record['timings_s'].values()):.1f} s",
    )


def evaluate_quality(
    context: EvaluationContext,
    genomes: Iterable[tuple[int, np.ndarray]],
    store: EvaluationStore,
    label: str = "",
) -> pd.DataFrame:
    """Accuracy (on the quantized model) and exact size of each (candidate index, genome); `label` names
    their run in the log."""
    rows = []
    for index, genome in genomes:
        arch, policy = context.candidate(genome)
        quality = StoredEvaluation.look_up(store, context.quality_fields(arch, policy), quality_problem)
        cached = quality.record is not None
        if not cached:
            result = context.evaluate(arch, policy, None, measure_accuracy=True)
            quality.put(store, {k: result[k] for k in QUALITY_RECORD}, f"candidate {index}")
        _log_quality(label, index, quality.record, cached)
        rows.append(_quality_row(index, quality.record, quality.key, cached))
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


def _latency_row(
    index: int, record: Mapping[str, Any], key: str, cached: bool, host: HostProfile
) -> dict[str, Any]:
    return {
        "candidate": index,
        **GatedLatency.from_dict(record["latency"]).columns(),
        "host": host.name,
        **machine_columns(record["host_info"]),
        "latency_key": key,
        "latency_cached": cached,
    }


def compiled_reference(context: EvaluationContext, host: HostProfile) -> Reference:
    """The all-INT8 full network (what latencies are normalized by), compiled once in a latency job, with
    its timed inputs: every candidate is timed in alternating blocks with it, so a disturbance hits both
    and the candidate / baseline ratio of the same rounds (`latency_reference_ratio`) holds."""
    supernet = context.supernet
    settings = host.settings()
    _, policy, qmodel = quantized_candidate(
        supernet,
        supernet.largest_arch(),
        full_network_policy(supernet, "int8"),
        context.calibration,
        context.settings.calibration_batch_size,
    )
    inputs = timed_inputs(context.validation, supernet.input_names, settings.batch_size)
    model, _ = compile_checked(qmodel, inputs, policy, settings.threads, PhaseTimer())
    return model, inputs


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
    (candidate index, genome), through the host's stability gate and interleaved with the all-INT8
    baseline compiled in this job, with the host, CPU model and (under SLURM) node it was measured on;
    `with_quality` adds accuracy and size.

    What the store holds is read; a candidate missing both its quality and its latency is quantized once
    for both. The baseline is compiled only when some latency is to be measured.
    """
    todo = []
    for index, genome in genomes:
        arch, policy = context.candidate(genome)
        quality = (
            StoredEvaluation.look_up(store, context.quality_fields(arch, policy), quality_problem)
            if with_quality
            else None
        )
        latency = StoredEvaluation.look_up(
            store, context.latency_fields(arch, policy, host, machine), latency_problem
        )
        todo.append((index, arch, policy, quality, latency))
    reference = compiled_reference(context, host) if any(t[4].record is None for t in todo) else None
    rows = []
    for index, arch, policy, quality, latency in todo:
        quality_cached = quality is None or quality.record is not None
        latency_cached = latency.record is not None
        if not (quality_cached and latency_cached):
            result = context.evaluate(
                arch,
                policy,
                None if latency_cached else host,
                measure_accuracy=not quality_cached,
                reference=reference,
            )
            if not quality_cached:
                quality.put(store, {k: result[k] for k in QUALITY_RECORD}, f"candidate {index}")
            if not latency_cached:
                record = {"latency": result["latency"], "host_info": dict(machine)}
                latency.put(store, {**record, "timings_s": result["timings_s"]}, f"candidate {index}")
        row = _latency_row(index, latency.record, latency.key, latency_cached, host)
        if quality is not None:
            row = {**_quality_row(index, quality.record, quality.key, quality_cached), **row}
        # one line a candidate, ending "(measured)" or "(cached)" (both read back), like a shard's
        log.info(
            "candidate %d: %slatency %.3f ms (IQR %.3f, %s, x%.3f of the baseline) (%s)",
            index,
            "" if quality is None else f"accuracy {row['accuracy']:.4f} size {row['size_bytes']} bytes, ",
            row["latency_ms"],
            row["latency_iqr_ms"],
            "stable" if row["latency_stable"] else "UNSTABLE",
            row["latency_reference_ratio"],
            "cached" if latency_cached and quality_cached else "measured",
        )
        rows.append(row)
    return pd.DataFrame(rows)


def pool_members(
    candidates: Mapping[str, np.ndarray], shard: int, shards: int
) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Shard `shard` of `shards` of an iteration's pool: the populations of its runs (run label -> genomes)
    laid end to end, candidates shard, shard + shards, ... of them (round robin, so shards get even loads),
    grouped back by run as (candidate index in its run, genome)."""
    pooled = [(run, i, genome) for run, genomes in candidates.items() for i, genome in enumerate(genomes)]
    members: dict[str, list[tuple[int, np.ndarray]]] = {}
    for run, i, genome in pooled[shard::shards]:
        members.setdefault(run, []).append((i, genome))
    return members


def evaluate_pool(
    context: EvaluationContext,
    members: Mapping[str, Iterable[tuple[int, np.ndarray]]],
    store: EvaluationStore,
) -> pd.DataFrame:
    """Accuracy and size of the candidates of several runs (run label -> (candidate index, genome)), in one
    process: one table, each row with its run's label, in the order evaluated. A network two runs proposed
    is evaluated once; the second reads it from the store."""
    columns = ["run", *QUALITY_COLUMNS]
    frames = [
        evaluate_quality(context, genomes, store, label=run).assign(run=run)[columns]
        for run, genomes in members.items()
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


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
    """Compiled end-to-end latency of the full super-network, all-INT8 or FP32, on a host profile
    (`latency_ms`: the median, as for candidates)."""
    supernet = context.supernet
    result = context.evaluate(
        supernet.largest_arch(), full_network_policy(supernet, precision), host, measure_accuracy=False
    )
    gated = GatedLatency.from_dict(result["latency"])
    return {
        "precision": precision,
        "host": host.name,
        "latency_ms": gated.stats.reported,
        "latency_stable": gated.stable,
        "latency": result["latency"],
        "host_info": dict(machine),
    }
