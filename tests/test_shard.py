"""Evaluation jobs on a tiny BERT super-network: shards, the content-addressed cache, baselines, gathering."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from simqnas import shard
from simqnas.data import save_split
from simqnas.evalstore import EvaluationStore, StoredEvaluation, evaluation_key
from simqnas.history import gather_iteration, history_from_tables
from simqnas.latency import HostProfile
from simqnas.shard import (
    EvaluationContext,
    evaluate_baseline,
    evaluate_pool,
    evaluate_quality,
    latency_problem,
    measure_on_host,
    pool_members,
    quality_problem,
)
from simqnas.space import SearchSpace
from simqnas.supernets.bert import BertSuperNetwork

TINY = {
    "num_layers": 2,
    "num_heads": 2,
    "ffn_size": 16,
    "hidden_size": 32,
    "vocab_size": 40,
    "max_position": 12,
}
SEQ = 6


def split(rows: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(0, TINY["vocab_size"], (rows, SEQ), generator=generator),
        "attention_mask": torch.ones(rows, SEQ, dtype=torch.int64),
        "labels": torch.randint(0, 2, (rows,), generator=generator),
    }


@pytest.fixture(scope="module")
def job_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    torch.manual_seed(0)
    supernet = BertSuperNetwork(**TINY, sequence_length=SEQ)
    supernet.save(root / "supernet.safetensors")
    space = SearchSpace.from_dict(
        {
            "elastic": {
                "num_layers": {"count": 1, "choices": [1, 2]},
                "num_heads": {"count": 2, "choices": [1, 2]},
                "ffn_size": {"count": 2, "choices": [8, 16]},
            },
            "quantization": {"layers": supernet.quantizable_layers(), "choices": ["int8", "fp32"]},
            "depth": [
                {
                    "param": "num_layers",
                    "units": [
                        {"num_heads": [0], "ffn_size": [0], "quantization": list(range(6))},
                        {"num_heads": [1], "ffn_size": [1], "quantization": list(range(6, 12))},
                    ],
                }
            ],
        }
    )
    (root / "space.yaml").write_text(yaml.safe_dump(space.to_dict(), sort_keys=False))
    save_split(root / "calibration.safetensors", split(8, 1))
    save_split(root / "validation.safetensors", split(24, 2))
    return root


def load_context(root, kind: str = "joint") -> EvaluationContext:
    files = {
        "supernet": root / "supernet.safetensors",
        "space": root / "space.yaml",
        "calibration": root / "calibration.safetensors",
        "validation": root / "validation.safetensors",
    }
    spec = {"calibration": {"batch_size": 4}, "evaluation": {"batch_size": 8}}
    return EvaluationContext.from_job(files, kind, spec)


def test_shards_split_a_pool_of_runs_round_robin():
    pool = {"linas/seed0": np.arange(6).reshape(3, 2), "random/seed0": np.arange(4).reshape(2, 2) + 10}
    members = [pool_members(pool, shard, 2) for shard in range(2)]
    indices = [{run: [i for i, _ in genomes] for run, genomes in shard.items()} for shard in members]
    assert indices[0] == {"linas/seed0": [0, 2], "random/seed0": [1]}
    assert indices[1] == {"linas/seed0": [1], "random/seed0": [0]}
    assert [g.tolist() for g in (members[1]["random/seed0"][0][1], members[0]["linas/seed0"][1][1])] == [
        [10, 11],
        [4, 5],
    ]
    last = pool_members(pool, 4, 6)
    assert [(run, [i for i, _ in genomes]) for run, genomes in last.items()] == [("random/seed0", [1])]
    assert pool_members(pool, 5, 6) == {}  # more shards than candidates: the workflow plans no such shard


def test_a_pooled_shard_gathers_into_each_run_s_own_evaluations(job_files, tmp_path):
    """One process evaluates two runs' populations; a network both proposed is evaluated once; each run
    gathers its own candidates, with the numbers a shard of its own would have measured."""
    context = load_context(job_files)
    genomes = context.space.sample(3, np.random.default_rng(4))
    pool = {"linas/seed0": genomes[:2], "random/seed0": genomes[1:]}
    store = EvaluationStore(tmp_path / "evals")
    table = evaluate_pool(context, pool_members(pool, 0, 1), store)
    assert table["run"].tolist() == ["linas/seed0"] * 2 + ["random/seed0"] * 2
    assert table["quality_cached"].tolist() == [False, False, True, False]  # random's first is linas' second
    table.to_csv(tmp_path / "shard0.csv", index=False)
    alone = evaluate_quality(context, list(enumerate(genomes)), EvaluationStore(tmp_path / "alone"))
    for run, rows in {"linas/seed0": [0, 1], "random/seed0": [1, 2]}.items():
        gathered = gather_iteration(pool[run], [tmp_path / "shard0.csv"], [], iteration=0, run=run)
        assert gathered["candidate"].tolist() == [0, 1]
        assert gathered["accuracy"].tolist() == alone["accuracy"].iloc[rows].tolist()
        assert gathered["size_bytes"].tolist() == alone["size_bytes"].iloc[rows].tolist()
    with pytest.raises(ValueError, match=r"evaluations of tpe/seed0 do not cover candidates 0\.\.1 once"):
        gather_iteration(pool["linas/seed0"], [tmp_path / "shard0.csv"], [], iteration=0, run="tpe/seed0")


def test_quality_is_measured_once_and_then_read_from_the_store(job_files, tmp_path):
    context = load_context(job_files)
    store = EvaluationStore(tmp_path / "evals")
    genomes = context.space.sample(3, np.random.default_rng(0))
    first = evaluate_quality(context, list(enumerate(genomes)), store)
    assert not first["quality_cached"].any()
    assert first["accuracy"].between(0, 1).all() and (first["size_bytes"] > 0).all()
    second = evaluate_quality(context, list(enumerate(genomes)), store)
    assert second["quality_cached"].all()
    pd.testing.assert_frame_equal(
        first.drop(columns="quality_cached"), second.drop(columns="quality_cached"), check_exact=True
    )


def test_calibration_and_accuracy_run_at_the_config_s_threads_whatever_the_job_s(
    job_files, tmp_path, monkeypatch
):
    """A job Snakemake scaled down (`--cores` below `threads`) or a latency job pinned to its host's threads
    still calibrates and scores at the config's `threads`: a stored accuracy never depends on which job
    measured it. The real evaluation runs; the spy only reads the thread count it ran at."""
    real, seen = shard.evaluate_candidate, []

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(shard, "evaluate_candidate", spy)
    context = load_context(job_files)
    context.threads = 2
    genomes = context.space.sample(2, np.random.default_rng(0))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        evaluate_quality(context, list(enumerate(genomes)), EvaluationStore(tmp_path / "evals"))
        assert torch.get_num_threads() == 1  # the job's own count is restored
    finally:
        torch.set_num_threads(previous)
    assert seen == [2, 2]


def test_genomes_differing_only_in_dropped_layers_share_one_evaluation(job_files, tmp_path):
    context = load_context(job_files)
    one_layer = context.space.encode(
        {
            "num_layers": [1],
            "num_heads": [2, 1],
            "ffn_size": [16, 8],
            "quantization": dict.fromkeys(context.supernet.quantizable_layers(), "int8"),
        }
    )
    other = one_layer.copy()
    other[2] = 1 - other[2]  # the second layer's heads: that layer does not exist
    table = evaluate_quality(context, [(0, one_layer), (1, other)], EvaluationStore(tmp_path / "evals"))
    assert table["quality_key"].nunique() == 1
    assert table["quality_cached"].tolist() == [False, True]


def test_quantization_only_space_evaluates_the_full_architecture(job_files, tmp_path):
    context = load_context(job_files, "quant")
    genome = context.space.sample(1, np.random.default_rng(3))[0]
    arch, policy = context.candidate(genome)
    assert arch == context.supernet.largest_arch()
    assert len(policy) == len(context.supernet.quantizable_layers())


def test_int8_baseline_is_smaller_than_fp32(job_files):
    context = load_context(job_files)
    fp32, int8 = evaluate_baseline(context, "fp32"), evaluate_baseline(context, "int8")
    assert int8["size_bytes"] < fp32["size_bytes"]
    assert 0 <= int8["accuracy"] <= 1 and 0 <= fp32["accuracy"] <= 1


def write_shard(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)


def test_gather_joins_shards_and_refuses_bad_measurements(tmp_path):
    genomes = np.array([[0, 1], [1, 0], [1, 1]])
    write_shard(tmp_path / "s0.csv", [{"candidate": 0, "accuracy": 0.8, "size_bytes": 10}])
    write_shard(
        tmp_path / "s1.csv",
        [
            {"candidate": 1, "accuracy": 0.7, "size_bytes": 8},
            {"candidate": 2, "accuracy": 0.9, "size_bytes": 12},
        ],
    )
    table = gather_iteration(genomes, [tmp_path / "s0.csv", tmp_path / "s1.csv"], [], iteration=1)
    assert table["candidate"].tolist() == [0, 1, 2]
    assert [json.loads(g) for g in table["genome"]] == genomes.tolist()
    table.to_csv(tmp_path / "evaluated.csv", index=False)
    history = history_from_tables([tmp_path / "evaluated.csv"], 2, "size")
    assert history.values.tolist() == [[0.8, 10], [0.7, 8], [0.9, 12]]

    write_shard(tmp_path / "bad.csv", [{"candidate": 0, "accuracy": float("nan"), "size_bytes": 10}])
    with pytest.raises(ValueError, match="candidate 0: invalid accuracy"):
        gather_iteration(genomes[:1], [tmp_path / "bad.csv"], [], iteration=0)
    write_shard(tmp_path / "neg.csv", [{"candidate": 0, "accuracy": 0.5, "size_bytes": -3}])
    with pytest.raises(ValueError, match="invalid size_bytes"):
        gather_iteration(genomes[:1], [tmp_path / "neg.csv"], [], iteration=0)
    with pytest.raises(ValueError, match="do not cover"):
        gather_iteration(genomes, [tmp_path / "s0.csv"], [], iteration=0)


def test_a_corrupt_cached_evaluation_is_evaluated_again(job_files, tmp_path, caplog):
    """A cached entry failing validation is neither trusted nor fatal: a warning, then a fresh evaluation
    that replaces it. One entry was edited (checksum mismatch), one is well-formed with a valid checksum but
    holds an impossible accuracy (the record check)."""
    context = load_context(job_files)
    store = EvaluationStore(tmp_path / "evals")
    genomes = list(enumerate(context.space.sample(2, np.random.default_rng(1))))
    first = evaluate_quality(context, genomes, store)
    edited, impossible = first["quality_key"]
    entry = json.loads(store.path(edited).read_text())
    entry["record"]["accuracy"] = 0.99
    store.path(edited).write_text(json.dumps(entry))
    entry = json.loads(store.path(impossible).read_text())
    store.put(impossible, {**entry["record"], "accuracy": 1.5}, fields=entry["fields"])

    with caplog.at_level(logging.WARNING, logger="simqnas.evalstore"):
        again = evaluate_quality(context, genomes, store)
    assert again["quality_cached"].tolist() == [False, False]
    assert f"{edited}.json: checksum mismatch, treated as missing" in caplog.text
    assert f"{impossible}.json: accuracy 1.5 is not a finite number within [0.0, 1.0]" in caplog.text
    pd.testing.assert_frame_equal(
        again.drop(columns="quality_cached"), first.drop(columns="quality_cached"), check_exact=True
    )
    assert evaluate_quality(context, genomes, store)["quality_cached"].all()  # repaired


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"accuracy": float("nan"), "size_bytes": 10}, "accuracy nan"),
        ({"accuracy": -0.1, "size_bytes": 10}, "accuracy -0.1"),
        ({"accuracy": 0.5, "size_bytes": 0}, "size_bytes 0"),
        ({"accuracy": 0.5, "size_bytes": float("inf")}, "size_bytes inf"),
        ({"accuracy": True, "size_bytes": 10}, "accuracy True"),
        ({"accuracy": 0.5, "size_bytes": 10.5}, "size_bytes 10.5 is not a whole number"),
        ({"size_bytes": 10}, "accuracy None"),
    ],
)
def test_an_invalid_fresh_evaluation_is_not_stored(tmp_path, record, problem):
    """An evaluation that comes back NaN, negative or out of range fails its job with one line naming the
    candidate and the value, and is not stored (a stored one would be reused by every later run)."""
    store = EvaluationStore(tmp_path / "evals")
    stored = StoredEvaluation.look_up(store, {"metric": "quality", "candidate": 7}, quality_problem)
    with pytest.raises(ValueError, match=rf"candidate 7: the evaluation returned {problem}") as error:
        stored.put(store, record, "candidate 7")
    assert "\n" not in str(error.value)
    assert not store.path(stored.key).exists() and stored.record is None


def test_latency_records_are_checked():
    from simqnas.latency import GatedLatency, StabilityGate, summarize

    stats = summarize([2.0, 2.1, 1.9, 2.0], trim=0.0, threads=1)
    gated = GatedLatency(stats, None, 1, True, StabilityGate(), (0.05,), (0.1,) * 3, (0.1,) * 3)
    good = {"latency": gated.to_dict(), "host_info": {"cpu_model": "x"}}
    assert latency_problem(good) is None

    def broken(**changes):
        return {**good, "latency": {**good["latency"], "stats": {**good["latency"]["stats"], **changes}}}

    assert latency_problem(broken(median=float("nan"))) == (
        "latency median nan is not a finite number within [0.0, inf]"
    )
    assert latency_problem(broken(p25=-1.0)).startswith("latency p25 -1.0")
    assert latency_problem(broken(min=0.0)) == "latency of 0 ms"
    assert latency_problem({"latency": good["latency"]}) == "no host_info"
    # a record of the trimmed-mean recipe (no quartiles) is measured again, not read
    old = {"latency": {"mean": 2.0, "std": 0.1, "p5": 1.9, "p95": 2.2}, "host_info": {"cpu_model": "x"}}
    assert latency_problem(old).startswith("no gated latency statistics")


def test_cutting_the_padding_does_not_change_a_quantized_sentence_s_prediction(job_files):
    """The accuracy pass cuts each length-sorted batch to its longest sentence (symbolic token dimension
    in the export): the same quantized model gives every sentence the logits it gives it padded."""
    from simqnas.candidate import accuracy, quantize_subnetwork, subnetwork_policy
    from simqnas.data.batching import labelled_batches

    context = load_context(job_files)
    supernet = context.supernet
    data = split(24, 5)
    lengths = torch.randint(2, SEQ + 1, (24,), generator=torch.Generator().manual_seed(0))
    data["attention_mask"] = (torch.arange(SEQ) < lengths[:, None]).long()
    data["input_ids"] = data["input_ids"] * data["attention_mask"]
    subnet = supernet.extract(supernet.largest_arch())
    policy = subnetwork_policy(subnet, dict.fromkeys(supernet.quantizable_layers(), "int8"))
    qmodel = quantize_subnetwork(subnet, policy, data, supernet.input_names, 4, supernet.variable_dims())
    cut = list(supernet.accuracy_batches(data, 8))
    assert max(inputs[0].shape[1] for inputs, _ in cut) == SEQ > min(inputs[0].shape[1] for inputs, _ in cut)
    with torch.inference_mode():
        padded = qmodel(data["input_ids"], data["attention_mask"])
        order = torch.argsort(data["attention_mask"].sum(1), stable=True)
        trimmed = torch.cat([qmodel(*inputs) for inputs, _ in cut])
    torch.testing.assert_close(trimmed, padded[order], rtol=1e-4, atol=1e-4)
    assert accuracy(qmodel, cut) == accuracy(qmodel, labelled_batches(data, supernet.input_names, 8))


LOCAL = {"name": "local", "threads": 1, "warmup": 1, "runs": 5, "trim": 0.0, "pin_threads": False}


def test_a_changed_software_recipe_method_or_cpu_is_a_cache_miss(job_files, monkeypatch):
    """Keys cover torch's and neural-compressor's versions, the evaluation recipe, the latency method and
    the CPU model: a number measured under any other is never served."""
    import simqnas.shard as shard

    host = HostProfile.from_config(LOCAL)
    machine = {"cpu_model": "AMD EPYC 9654"}
    genome = load_context(job_files).space.sample(1, np.random.default_rng(0))[0]

    def keys(context, machine=machine, method="compiled"):
        arch, policy = context.candidate(genome)
        quality = context.quality_fields(arch, policy)
        latency = {**context.latency_fields(arch, policy, host, machine), "method": method}
        return [evaluation_key(**quality), evaluation_key(**latency)]

    context = load_context(job_files)
    stored = keys(context)
    versions = shard.software_versions()
    for name, value in [("torch", "9.9"), ("neural_compressor", "9.9")]:
        with monkeypatch.context() as patch:
            patch.setattr(
                shard, "software_versions", lambda name=name, value=value: {**versions, name: value}
            )
            assert not set(keys(load_context(job_files))) & set(stored), name
    with monkeypatch.context() as patch:
        patch.setattr(shard, "EVALUATION_RECIPE", shard.EVALUATION_RECIPE + 1)
        assert not set(keys(load_context(job_files))) & set(stored)
    assert keys(context, machine={"cpu_model": "Intel Xeon 8480"})[1] != stored[1]
    assert keys(context, method="eager_int8")[1] != stored[1]
    assert keys(context) == stored


@pytest.mark.slow
def test_a_latency_job_measures_quality_and_latency_in_one_pass(job_files, tmp_path):
    """One quantization per candidate serves accuracy, size and the compiled latency; both are stored
    (a size shard later reads the quality), and a second job reads everything from the store."""
    context = load_context(job_files)
    store = EvaluationStore(tmp_path / "evals")
    host, machine = HostProfile.for_latency_job(LOCAL)
    genomes = list(enumerate(context.space.sample(2, np.random.default_rng(4))))
    first = measure_on_host(context, genomes, host, machine, store, with_quality=True)
    assert not first["quality_cached"].any() and not first["latency_cached"].any()
    assert (first["latency_ms"] > 0).all() and (first["latency_reference_ms"] > 0).all()
    assert (first["latency_reference_ratio"] == first["latency_ms"] / first["latency_reference_ms"]).all()
    records = [store.get(key) for key in first["latency_key"]]
    assert all(r["timings_s"]["quantize"] > 0 and "compile" in r["timings_s"] for r in records)
    assert [r["latency"]["stats"]["threads"] for r in records] == [1, 1]
    assert all(r["latency"]["compile_threads"] == 1 for r in records)
    assert all(r["latency"]["int8_kernel_calls"] >= 0 for r in records)
    assert evaluate_quality(context, genomes, store)["quality_cached"].all()
    again = measure_on_host(context, genomes, host, machine, store, with_quality=True)
    assert again["quality_cached"].all() and again["latency_cached"].all()
    pd.testing.assert_frame_equal(
        again.drop(columns=["quality_cached", "latency_cached"]),
        first.drop(columns=["quality_cached", "latency_cached"]),
    )
    first.to_csv(tmp_path / "latency-local.csv", index=False)
    table = gather_iteration(np.array([g for _, g in genomes]), [], [tmp_path / "latency-local.csv"], 0)
    assert table["accuracy"].tolist() == first["accuracy"].tolist()
    assert table["latency_ms"].tolist() == first["latency_ms"].tolist()


@pytest.mark.slow
def test_an_int8_layer_that_compiles_to_fp32_code_is_an_error_not_a_latency(job_files):
    """At hidden size 8, Inductor lowers the batch-1 pooler and classifier of an all-INT8 BERT to generic
    FP32 code (dequantized weights) instead of oneDNN INT8 kernels: 12 INT8 kernel calls for 14 INT8
    layers. Such a latency belongs to another network; the compile check refuses it."""
    from simqnas.candidate import PhaseTimer, compile_checked, quantize_subnetwork, subnetwork_policy

    torch.manual_seed(0)
    supernet = BertSuperNetwork(**{**TINY, "hidden_size": 8}, sequence_length=SEQ).eval()
    subnet = supernet.extract(supernet.largest_arch())
    policy = subnetwork_policy(subnet, dict.fromkeys(supernet.quantizable_layers(), "int8"))
    data = split(8, 1)
    qmodel = quantize_subnetwork(subnet, policy, data, supernet.input_names, 4, supernet.variable_dims())
    one = (data["input_ids"][:1], data["attention_mask"][:1])
    with pytest.raises(RuntimeError, match="12 INT8 kernel calls for 14 INT8 layers"):
        compile_checked(qmodel, one, policy, 1, PhaseTimer())


def test_an_evaluation_job_does_not_import_the_search_algorithms():
    """A shard reads the history's types, not the algorithms: their imports (pymoo, optuna) would be paid by
    every evaluation job."""
    probe = "import sys, simqnas.shard, simqnas.history; print(sorted(m for m in sys.modules if 'optuna' in m"
    probe += " or m.startswith(('simqnas.search.linas', 'simqnas.search.tpe'))))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
