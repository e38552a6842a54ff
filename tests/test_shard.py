"""Evaluation jobs on a tiny BERT super-network: shards, the content-addressed cache, baselines, gathering."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from simqnas.data import save_split
from simqnas.evalstore import EvaluationStore, evaluation_key
from simqnas.history import gather_iteration, history_from_tables
from simqnas.shard import (
    EvaluationContext,
    HostProfile,
    WrongHostError,
    _store_checked,
    evaluate_baseline,
    evaluate_quality,
    latency_problem,
    machine_columns,
    quality_problem,
    shard_members,
)
from simqnas.space import SearchSpace
from simqnas.supernets.bert import BertSuperNetwork

TINY = {
    "num_layers": 2,
    "num_heads": 2,
    "ffn_size": 16,
    "hidden_size": 8,
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


def test_shards_split_candidates_round_robin():
    genomes = np.arange(10).reshape(5, 2)
    members = [shard_members(genomes, shard, 2) for shard in range(2)]
    assert [i for i, _ in members[0]] == [0, 2, 4]
    assert [i for i, _ in members[1]] == [1, 3]


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


def test_host_profile_refuses_the_wrong_cpu():
    host = HostProfile.from_config(
        {"name": "xeon8480", "threads": 2, "warmup": 1, "runs": 3, "trim": 0.0, "cpu_model": "8480"}
    )
    with pytest.raises(WrongHostError, match=r"xeon8480.*8480.*lscpu says 'AMD EPYC 9654'"):
        host.check_machine({"cpu_model": "AMD EPYC 9654", "hostname": "node1"})
    host.check_machine({"cpu_model": "Intel(R) Xeon(R) Platinum 8480+", "hostname": "node2"})


def slurm_machine(node: str | None, features: list[str] | None, cpu: str = "Intel(R) Xeon(R) 8380") -> dict:
    """A host_info() record as a job on SLURM node `node` writes it (None: outside SLURM)."""
    slurm = None
    if node is not None:
        error = None if features is not None else "`scontrol show node -o x` failed: timed out"
        slurm = {"node": node, "job_id": "7", "features": features, "error": error}
    return {"hostname": "submit-host", "cpu_model": cpu, "slurm": slurm}


XEON8380 = {"name": "xeon8380", "feature": "xeon8380", "threads": 2, "warmup": 1, "runs": 3, "trim": 0.0}


def test_host_profile_accepts_a_node_with_its_feature():
    HostProfile.from_config(XEON8380).check_machine(slurm_machine("node8380", ["fast", "xeon8380"]))


@pytest.mark.parametrize(
    ("machine", "message"),
    [
        (
            slurm_machine("node8480", ["xeon8480"]),
            r"^host xeon8380: .* node8480: it has features \['xeon8480'\], not 'xeon8380'$",
        ),
        (slurm_machine("node0", []), r"node node0: it has features \[\], not 'xeon8380'"),
        (slurm_machine("node8380", None), r"node node8380: cannot read its features .*timed out"),
        (slurm_machine(None, None), r"submit-host: .*does not run under SLURM"),
    ],
    ids=["other feature", "no features", "features unknown", "outside SLURM"],
)
def test_host_profile_refuses_a_node_without_its_feature(machine, message):
    with pytest.raises(WrongHostError, match=message) as refused:
        HostProfile.from_config(XEON8380).check_machine(machine)
    assert "\n" not in str(refused.value)  # one line in the job's log


def test_host_profile_checks_the_cpu_model_on_the_right_node_too():
    host = HostProfile.from_config({**XEON8380, "cpu_model": "8380"})
    host.check_machine(slurm_machine("node8380", ["xeon8380"]))
    with pytest.raises(WrongHostError, match=r"SLURM node node8380: expected a CPU model containing '8380'"):
        host.check_machine(slurm_machine("node8380", ["xeon8380"], cpu="Intel(R) Xeon(R) Platinum 8480+"))


def test_a_latency_job_on_the_wrong_machine_ends_with_the_one_line(monkeypatch):
    monkeypatch.delenv("SLURMD_NODENAME", raising=False)  # this test process does not run under SLURM
    with pytest.raises(SystemExit, match=r"^host xeon8380: .*does not run under SLURM") as ended:
        HostProfile.for_latency_job(XEON8380)
    assert "\n" not in str(ended.value)
    assert HostProfile.for_latency_job({**XEON8380, "feature": None}).name == "xeon8380"


def test_local_profile_measures_anywhere():
    local = HostProfile.from_config({"name": "local", "threads": 2, "warmup": 1, "runs": 3, "trim": 0.0})
    local.check_machine(slurm_machine(None, None))
    local.check_machine(slurm_machine("node8480", ["xeon8480"]))


def test_latency_rows_say_where_they_were_measured():
    assert machine_columns(slurm_machine("node8380", ["a", "xeon8380"])) == {
        "cpu_model": "Intel(R) Xeon(R) 8380",
        "node": "node8380",
        "node_features": "a;xeon8380",
    }
    assert machine_columns(slurm_machine(None, None))["node"] == ""


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
        ({"size_bytes": 10}, "accuracy None"),
    ],
)
def test_an_invalid_fresh_evaluation_is_not_stored(tmp_path, record, problem):
    """An evaluation that comes back NaN, negative or out of range fails its job with one line naming the
    candidate and the value, and is not stored (a stored one would be reused by every later run)."""
    store = EvaluationStore(tmp_path / "evals")
    fields = {"metric": "quality", "candidate": 7}
    key = evaluation_key(**fields)
    with pytest.raises(ValueError, match=rf"candidate 7: the evaluation returned {problem}") as error:
        _store_checked(store, key, record, fields, quality_problem, 7)
    assert "\n" not in str(error.value)
    assert not store.path(key).exists()


def test_latency_records_are_checked():
    good = {"latency": {"mean": 2.0, "std": 0.1, "p5": 1.9, "p95": 2.2}, "host_info": {"cpu_model": "x"}}
    assert latency_problem(good) is None
    assert latency_problem({**good, "latency": {**good["latency"], "mean": float("nan")}}) == (
        "latency mean nan is not a finite number within [0.0, inf]"
    )
    assert latency_problem({**good, "latency": {**good["latency"], "p5": -1.0}}).startswith("latency p5 -1.0")
    assert latency_problem({**good, "latency": {**good["latency"], "mean": 0.0}}) == "latency mean is 0"
    assert latency_problem({"latency": good["latency"]}) == "no latency statistics or host_info"
