"""The held-out test split: every front point of a finished search run, and the baselines, evaluated once more
on samples no training, search or calibration saw, keeping which samples each classified correctly.

Validation picks the points (each run's own front), the test split reports them: the paired statistics of
`simqnas.statistics` compare a point with a baseline sample by sample. The context is an
`EvaluationContext` whose `validation` data are the test split, so its provenance (and every stored key)
carries the test file's hash; records are stored content-addressed under their own metric,
`per_sample_quality`, beside the search's evaluations, and reused by every run that meets the same network.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from simqnas.candidate import (
    correct_predictions,
    full_network_policy,
    quantized_candidate,
)
from simqnas.evalstore import EvaluationStore, StoredEvaluation
from simqnas.history import ranked_values
from simqnas.pareto import non_dominated_mask
from simqnas.quantize import model_size_bytes
from simqnas.shard import EvaluationContext
from simqnas.statistics import decode_correct, encode_correct
from simqnas.summary import split_unstable_latency
from simqnas.supernets.base import Arch

log = logging.getLogger(__name__)

METRIC = "per_sample_quality"
#: the columns of a run's test table, after the run's own `evaluation` index
TEST_COLUMNS = ["test_accuracy", "test_samples", "test_correct", "test_key", "test_cached"]


def record_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with a stored test record (None if nothing): its correctness must decode to its
    accuracy."""
    try:
        correct = decode_correct(record["correct"], int(record["samples"]))
    except (KeyError, TypeError, ValueError) as error:
        return f"no readable per-sample correctness ({error})"
    accuracy = record.get("accuracy")
    if (
        isinstance(accuracy, bool)
        or not isinstance(accuracy, int | float)
        or not np.isclose(correct.mean(), accuracy)
    ):
        return f"accuracy {accuracy!r} is not that of its correctness ({correct.mean()})"
    return None


def _measure(context: EvaluationContext, arch: Arch, policy: Mapping[str, str]) -> dict[str, Any]:
    """The steps of a search evaluation (`simqnas.candidate`: extract as deployed, the policy with the
    super-network's fixed precisions, one INC quantization, the family's accuracy batches) on the test
    split, keeping each sample's outcome (in accuracy-batch order, the same for every network of a file)."""
    supernet, settings = context.supernet, context.settings
    subnet, layers, model = quantized_candidate(
        supernet, arch, policy, context.calibration, settings.calibration_batch_size
    )
    correct = correct_predictions(
        model, supernet.accuracy_batches(context.validation, settings.eval_batch_size)
    ).numpy()
    return {
        "accuracy": float(correct.mean()),
        "size_bytes": model_size_bytes(subnet, layers),
        "samples": len(correct),
        "correct": encode_correct(correct),
    }


def _stored(
    context: EvaluationContext, store: EvaluationStore, arch: Arch, policy: Mapping[str, str]
) -> tuple[dict[str, Any], str, bool]:
    stored = StoredEvaluation.look_up(
        store, {**context.quality_fields(arch, policy), "metric": METRIC}, record_problem
    )
    cached = stored.record is not None
    if not cached:
        stored.put(store, _measure(context, arch, policy), "test evaluation")
    return stored.record, stored.key, cached


def evaluate_test(
    context: EvaluationContext, genomes: Iterable[tuple[int, np.ndarray]], store: EvaluationStore
) -> pd.DataFrame:
    """Test accuracy and per-sample correctness of each (index, genome), on the quantized model."""
    rows = []
    for index, genome in genomes:
        arch, policy = context.candidate(genome)
        record, key, cached = _stored(context, store, arch, policy)
        log.info(
            "front point %d: test accuracy %.4f (%s)",
            index,
            record["accuracy"],
            "cached" if cached else "measured",
        )
        rows.append(
            {
                "index": index,
                "test_accuracy": record["accuracy"],
                "test_samples": record["samples"],
                "test_correct": record["correct"],
                "test_key": key,
                "test_cached": cached,
            }
        )
    return pd.DataFrame(rows, columns=["index", *TEST_COLUMNS])


def baseline_test(context: EvaluationContext, precision: str, store: EvaluationStore) -> dict[str, Any]:
    """The full network on the test split, every layer FP32 or every searched layer INT8: the validation
    baselines' definitions (`candidate.full_network_policy`), through the same path."""
    supernet = context.supernet
    record, key, _ = _stored(
        context, store, supernet.largest_arch(), full_network_policy(supernet, precision)
    )
    return {"precision": precision, **record, "test_key": key}


def run_front(evaluations: pd.DataFrame, objective: str) -> pd.DataFrame:
    """The rows of one run on its own validation front, accuracy against the run's second objective (size,
    or latency as the summaries normalize it: over the all-INT8 baseline timed in the same rounds where a
    row has that ratio), equal points all kept: every point a pooled front can pick is among them. An
    evaluation whose latency stayed unstable is on no front (`summary.split_unstable_latency`)."""
    evaluations = split_unstable_latency(evaluations)[0]
    return evaluations[non_dominated_mask(ranked_values(evaluations, objective), (True, False))]


def front_test_table(
    context: EvaluationContext, evaluations: pd.DataFrame, objective: str, store: EvaluationStore
) -> pd.DataFrame:
    """A run's front points (`evaluation` index, validation accuracy, genome) with their test results."""
    front = run_front(evaluations, objective)
    genomes = [
        (int(row.evaluation), np.asarray(json.loads(row.genome), dtype=np.int64))
        for row in front.itertuples()
    ]
    tested = evaluate_test(context, genomes, store).rename(columns={"index": "evaluation"})
    return front[["evaluation", "accuracy", "genome"]].merge(tested, on="evaluation", validate="one_to_one")
