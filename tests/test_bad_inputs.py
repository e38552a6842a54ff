"""The catalogue of bad inputs (docs/bad-inputs.md), one test each.

Every mistake gives one line that names the key, file or value and fails (an exception in the library, a
non-zero exit from `snakemake`), and leaves no output behind. What can be known before any job runs is
found at workflow start by `check_config` / `check_results_folder` (the Snakefile calls both): the config
cases below run them on a mutated config/smoke.yaml, and a representative subset runs the real `snakemake`
command on a temporary copy of the workflow. Mistakes only a job can see (a measurement that comes back NaN,
a damaged cache or checkpoint) are tested where the job's library code handles them; JOB_CASES names those
tests.
"""

from __future__ import annotations

import copy
import importlib
import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file

from simqnas.config import ConfigError, check_config, check_results_folder
from simqnas.data import load_split, save_split
from simqnas.data.prepare import calibration_subset
from simqnas.embedded import minilm_dir
from simqnas.history import gather_iteration
from simqnas.io import atomic_path
from simqnas.supernets.bert import BertSuperNetwork
from tests.workflow_utils import ROOT, copy_workflow, snakemake

SMOKE = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
TINY = {"num_layers": 1, "num_heads": 2, "ffn_size": 8, "hidden_size": 8, "vocab_size": 20, "max_position": 8}

Mutation = Callable[[dict, Path], None]


# ------------------------------------------------------------------------------ files the cases point at


def _saved_supernet(folder: Path) -> Path:
    torch.manual_seed(0)
    path = folder / "supernet.safetensors"
    BertSuperNetwork(**TINY).save(path)
    return path


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _pretrained_folder(folder: Path, weights: bool = True, truncate: bool = False) -> Path:
    model = folder / "hf"
    model.mkdir()
    shutil.copy(minilm_dir() / "config.json", model / "config.json")
    if weights:
        torch.manual_seed(0)
        save_file({k: v.contiguous() for k, v in BertSuperNetwork(**TINY).state_dict().items()}, model / "w")
        (model / "w").rename(model / "model.safetensors")
        if truncate:
            _truncated(model / "model.safetensors")
    return model


def _sst2(folder: Path, text: str, name: str = "train.tsv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _glue(config: dict, path: Path) -> None:
    config["datasets"]["sentences"].update(source="glue_sst2", path=str(path))


SST2_ROWS = "sentence\tlabel\n" + "".join(f"sentence number {i}\t{i % 2}\n" for i in range(300))


# ------------------------------------------------------------------------------ the config catalogue


def _set(path: str, value) -> Mutation:
    def mutate(config: dict, _: Path) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _checkpoint(make: Callable[[Path], Path]) -> Mutation:
    def mutate(config: dict, tmp: Path) -> None:
        config["supernets"]["bert"]["checkpoint"] = str(make(tmp))

    return mutate


def _pretrained(make: Callable[[Path], Path]) -> Mutation:
    def mutate(config: dict, tmp: Path) -> None:
        config["supernets"]["bert"]["pretrained"] = str(make(tmp))

    return mutate


def _glue_file(text: str | None, name: str = "train.tsv") -> Mutation:
    def mutate(config: dict, tmp: Path) -> None:
        _glue(config, tmp / name if text is None else _sst2(tmp, text, name))

    return mutate


def _glue_binary(config: dict, tmp: Path) -> None:
    path = tmp / "train.tsv"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)  # a gzip file under a .tsv name
    _glue(config, path)


def _glue_smaller_than_the_splits(config: dict, tmp: Path) -> None:
    _glue(config, _sst2(tmp, SST2_ROWS))  # 300 rows, the smoke splits need 512


def _glue_without_path(config: dict, _: Path) -> None:
    config["datasets"]["sentences"].update(source="glue_sst2", path=None)


def _space_file_with_empty_choices(config: dict, tmp: Path) -> None:
    space = yaml.safe_load((ROOT / "config/spaces/minilm.yaml").read_text())
    space["elastic"]["ffn_size"]["choices"] = []
    (tmp / "space.yaml").write_text(yaml.safe_dump(space))
    config["supernets"]["bert"]["space"] = str(tmp / "space.yaml")


def _other_family_checkpoint(tmp: Path) -> Path:
    path = tmp / "lstm.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"family": "lstm", "hyperparameters": "{}"})
    return path


def _plain_safetensors(tmp: Path) -> Path:
    path = tmp / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    return path


def _host_without_feature(config: dict, _: Path) -> None:
    config["hosts"]["xeon8380"] = {"threads": 4}


def _duplicate_run(config: dict, _: Path) -> None:
    config["experiments"]["bert_ablation"]["spaces"] = ["quant", "joint"]
    config["experiments"]["bert_ablation"]["evaluations"] = 9


def _unknown_top_level_key(config: dict, _: Path) -> None:
    config["treads"] = 2


def _reference(*, dataset: str | None = None, searched: bool = False) -> Mutation:
    """bert names `bert_ref`, a copy of itself, as its reference: on another dataset, or searched too."""

    def mutate(config: dict, _: Path) -> None:
        reference = copy.deepcopy(config["supernets"]["bert"])
        if dataset is not None:
            config["datasets"][dataset] = {**config["datasets"]["sentences"], "seed": 1}
            reference["dataset"] = dataset
        config["supernets"]["bert_ref"] = reference
        config["supernets"]["bert"]["references"] = ["bert_ref"]
        if searched:
            config["experiments"]["bert_ablation"]["supernet"] = "bert_ref"

    return mutate


#: id -> (mutation of config/smoke.yaml, fragments the one-line message must contain)
CONFIG_CASES: dict[str, tuple[Mutation, tuple[str, ...]]] = {
    "wrong-type": (_set("threads", "two"), ("config: threads:", "'two' is not of type 'integer'")),
    "wrong-type-nested": (_set("experiments.bert.population", 2.5), ("experiments.bert.population", "2.5")),
    "unknown-key": (_unknown_top_level_key, ("unknown key", "'treads'")),
    "unknown-key-nested": (
        _set("experiments.bert.evals", 6),
        ("experiments.bert:", "unknown key", "'evals'"),
    ),
    "unknown-family": (_set("supernets.bert.family", "gpt"), ("supernets.bert.family", "'gpt'")),
    "unknown-supernet": (_set("experiments.bert.supernet", "gpt2"), ("experiments.bert.supernet", "'gpt2'")),
    "unknown-algorithm": (
        _set("experiments.bert.algorithms", ["linas", "bayes"]),
        ("experiments.bert.algorithms.1", "'bayes'"),
    ),
    "unknown-objective": (
        _set("experiments.bert.objectives", ["size", "energy"]),
        ("experiments.bert.objectives.1", "'energy'"),
    ),
    "unknown-space-kind": (
        _set("experiments.bert.spaces", ["mixed"]),
        ("experiments.bert.spaces.0", "'mixed'"),
    ),
    "unknown-dataset": (_set("supernets.bert.dataset", "imagenet"), ("supernets.bert.dataset", "'imagenet'")),
    "wrong-source-for-kind": (
        _set("datasets.sentences.source", "fashion_mnist"),
        ("datasets.sentences.source", "'fashion_mnist' is not a text source"),
    ),
    "empty-algorithms": (_set("experiments.bert.algorithms", []), ("experiments.bert.algorithms", "[]")),
    "empty-seeds": (_set("experiments.bert.seeds", []), ("experiments.bert.seeds", "[]")),
    "empty-choices-inline": (
        _set("supernets.bert.space", {"elastic": {"num_heads": {"count": 2, "choices": []}}}),
        ("supernets.bert.space", "num_heads", "choices"),
    ),
    "empty-choices-in-space-file": (_space_file_with_empty_choices, ("space.yaml", "ffn_size", "choices")),
    "space-file-missing": (
        _set("supernets.bert.space", "config/spaces/bert-large.yaml"),
        ("supernets.bert.space", "bert-large.yaml"),
    ),
    "population-over-budget": (
        _set("experiments.bert.population", 30),
        ("experiments.bert.population", "30 is larger than the budget evaluations=6"),
    ),
    "seed-not-integer": (_set("experiments.bert.seeds", [0, 0.5]), ("experiments.bert.seeds.1", "0.5")),
    "seed-a-string": (_set("experiments.bert.seeds", ["zero"]), ("experiments.bert.seeds.0", "'zero'")),
    "seed-negative": (_set("experiments.bert.seeds", [-1]), ("experiments.bert.seeds.0", "-1")),
    "data-seed-not-integer": (_set("datasets.sentences.seed", "0"), ("datasets.sentences.seed", "'0'")),
    "shards-zero": (_set("shards", 0), ("config: shards:", "0")),
    "host-without-feature": (_host_without_feature, ("hosts.xeon8380.feature",)),
    "latency-without-host": (_set("experiments.bert.host", None), ("experiments.bert.host", "latency")),
    "latency-unknown-host": (
        _set("experiments.bert.host", "xeon9999"),
        ("experiments.bert.host", "'xeon9999'"),
    ),
    "run-defined-twice": (_duplicate_run, ("experiments.bert_ablation", "defined twice")),
    "reference-undefined": (
        _set("supernets.bert.references", ["resnet34"]),
        ("supernets.bert.references", "'resnet34' is not a defined super-network"),
    ),
    "reference-itself": (
        _set("supernets.bert.references", ["bert"]),
        ("supernets.bert.references", "'bert' is the network itself"),
    ),
    "reference-other-dataset": (
        _reference(dataset="sentences_b"),
        ("supernets.bert.references", "'bert_ref' uses dataset 'sentences_b'", "'sentences'"),
    ),
    "reference-in-experiment": (
        _reference(searched=True),
        ("supernets.bert.references", "'bert_ref' is searched by experiments.bert_ablation"),
    ),
    "architecture-of-another-family": (
        _set("supernets.bert.architecture", {"base_depths": [3, 4, 6, 3]}),
        ("supernets.bert.architecture.base_depths", "not a parameter of the bert family"),
    ),
    "glue-without-path": (_glue_without_path, ("datasets.sentences.path", "required", "glue_sst2")),
    "glue-path-missing": (_glue_file(None), ("datasets.sentences.path", "not found", "train.tsv")),
    "glue-file-empty": (_glue_file(""), ("datasets.sentences.path", "train.tsv", "empty file")),
    "glue-header-only": (
        _glue_file("sentence\tlabel\n"),
        ("datasets.sentences.path", "train.tsv", "no data rows"),
    ),
    "glue-wrong-columns": (
        _glue_file("text\tpolarity\nfine film\t1\n"),
        ("datasets.sentences.path", "train.tsv", "missing column 'sentence'"),
    ),
    "glue-unlabelled-test-file": (
        _glue_file("index\tsentence\tlabel\n0\tunlabelled\t-1\n"),
        ("datasets.sentences.path", "train.tsv", "label must be 0 or 1"),
    ),
    "glue-not-text": (
        _glue_binary,
        ("datasets.sentences.path", "train.tsv", "not a tab-separated text file"),
    ),
    "splits-larger-than-data": (
        _glue_smaller_than_the_splits,
        (
            "datasets.sentences.splits",
            "train 256 + validation 96 + calibration 32 + test 128 = 512 rows",
            "has 300",
        ),
    ),
    "calibration-larger-than-split": (
        _set("supernets.bert.calibration", {"samples": 100, "batch_size": 8, "seed": 0}),
        ("supernets.bert.calibration.samples", "100", "(32)"),
    ),
    "tokenizer-missing": (
        _set("datasets.sentences.tokenizer", "models/my-tokenizer"),
        ("datasets.sentences.tokenizer", "models/my-tokenizer"),
    ),
    "checkpoint-missing": (
        _set("supernets.bert.checkpoint", "results/old/supernet.safetensors"),
        ("supernets.bert.checkpoint", "results/old/supernet.safetensors"),
    ),
    "checkpoint-truncated": (
        _checkpoint(lambda tmp: _truncated(_saved_supernet(tmp))),
        ("supernets.bert.checkpoint", "supernet.safetensors", "not a readable safetensors file"),
    ),
    "checkpoint-not-a-supernet": (
        _checkpoint(_plain_safetensors),
        ("supernets.bert.checkpoint", "weights.safetensors", "no saved super-network"),
    ),
    "checkpoint-other-family": (
        _checkpoint(_other_family_checkpoint),
        ("supernets.bert.checkpoint", "lstm.safetensors", "'lstm'", "'bert'"),
    ),
    "pretrained-missing": (
        _set("supernets.bert.pretrained", "models/bert-base-uncased"),
        ("supernets.bert.pretrained", "models/bert-base-uncased"),
    ),
    "pretrained-without-weights": (
        _pretrained(lambda tmp: _pretrained_folder(tmp, weights=False)),
        ("supernets.bert.pretrained", "model.safetensors", "not found"),
    ),
    "pretrained-truncated": (
        _pretrained(lambda tmp: _pretrained_folder(tmp, truncate=True)),
        ("supernets.bert.pretrained", "model.safetensors", "not a readable safetensors file"),
    ),
}


def _bad_config(case: str, tmp: Path) -> dict:
    config = copy.deepcopy(SMOKE)
    CONFIG_CASES[case][0](config, tmp)
    return config


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_mistake_is_one_line_naming_it_at_workflow_start(case: str, tmp_path: Path):
    config = _bad_config(case, tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigError) as error:
        check_config(config, base=ROOT)
    message = str(error.value)
    assert "\n" not in message, message
    assert message.startswith("config: "), message
    for fragment in CONFIG_CASES[case][1]:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert sorted(tmp_path.rglob("*")) == before  # the check writes nothing


# ------------------------------------------------------------------------------ the results folder


def test_results_folder_blocked_by_a_file(tmp_path: Path):
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"results: cannot hold the results, .*results is not a folder"):
        check_results_folder(tmp_path / "results")
    with pytest.raises(ConfigError, match=r"results/bert: cannot hold the results"):
        check_results_folder(tmp_path / "results" / "bert")


def test_results_folder_not_writable(tmp_path: Path):
    results = tmp_path / "results"
    if os.geteuid() == 0:
        # root may write anywhere permission bits forbid; sysfs refuses new files even to root
        results.symlink_to("/sys/kernel", target_is_directory=True)
    else:
        results.mkdir()
        results.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(ConfigError) as error:
            check_results_folder(results)
    finally:
        if not results.is_symlink():
            results.chmod(stat.S_IRWXU)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{results}: not writable"), message


def test_writable_results_folder_passes_and_is_not_created(tmp_path: Path):
    check_results_folder(tmp_path / "results" / "deeper")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ through `snakemake`

#: a representative subset: schema, semantics, a corrupt file, a data file, the results folder
SNAKEMAKE_CASES = (
    "unknown-key",
    "population-over-budget",
    "latency-without-host",
    "checkpoint-truncated",
    "glue-wrong-columns",
    "calibration-larger-than-split",
)


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


def _error_lines(stderr: str) -> list[str]:
    # Snakemake's own note about the workflow profile precedes the check's line
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("Using workflow")]


@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_snakemake_refuses_the_config_before_any_job(case: str, workflow_copy: Path, tmp_path: Path):
    (workflow_copy / "config" / "bad.yaml").write_text(yaml.safe_dump(_bad_config(case, tmp_path)))
    result = snakemake(workflow_copy, "results/figures", configfile="config/bad.yaml", timeout=300)
    assert result.returncode != 0
    lines = _error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for fragment in CONFIG_CASES[case][1]:
        assert fragment in lines[0], lines[0]
    assert not (workflow_copy / "results").exists()  # no job ran, nothing written


def test_snakemake_refuses_an_unwritable_results_folder(workflow_copy: Path):
    (workflow_copy / "results").write_text("a file where the results folder should be")
    try:
        result = snakemake(workflow_copy, "-n", "results/figures", timeout=300)
    finally:
        (workflow_copy / "results").unlink()
    assert result.returncode != 0
    assert _error_lines(result.stderr) == ["results: cannot hold the results, results is not a folder"]


# ------------------------------------------------------------------------------ only a job can see these


def _write(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _gathered(tmp_path: Path, shard: list[dict], latency: list[dict] | None = None) -> Path:
    """What the gather rule does: gather, then write atomically (nothing is written if it refuses)."""
    output = tmp_path / "evaluated.csv"
    genomes = np.array([[0, 1]])
    shards = [_write(tmp_path / "shard0.csv", shard)]
    latencies = [] if latency is None else [_write(tmp_path / "latency-local.csv", latency)]
    with atomic_path(output) as tmp:
        gather_iteration(genomes, shards, latencies, iteration=0).to_csv(tmp, index=False)
    return output


GOOD = {"accuracy": 0.8, "size_bytes": 10}


@pytest.mark.parametrize(
    ("shard", "latency", "message"),
    [
        (
            {"accuracy": float("nan"), "size_bytes": 10},
            None,
            r"shard0\.csv: candidate 0: invalid accuracy nan",
        ),
        ({"accuracy": 0.8, "size_bytes": -3}, None, r"shard0\.csv: candidate 0: invalid size_bytes -3"),
        (GOOD, float("nan"), r"latency-local\.csv: candidate 0: invalid latency_ms nan"),
        (GOOD, -1.5, r"latency-local\.csv: candidate 0: invalid latency_ms -1\.5"),
    ],
    ids=["nan-accuracy", "negative-size", "nan-latency", "negative-latency"],
)
def test_invalid_measurement_is_refused_at_gather(tmp_path: Path, shard: dict, latency, message: str):
    latency_rows = None if latency is None else [{"candidate": 0, "latency_ms": latency}]
    with pytest.raises(ValueError, match=message) as error:
        _gathered(tmp_path, [{"candidate": 0, **shard}], latency_rows)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "evaluated.csv").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_split_file_truncated(tmp_path: Path):
    path = tmp_path / "validation.safetensors"
    save_split(path, {"input_ids": torch.zeros(4, 3, dtype=torch.int64), "labels": torch.zeros(4)})
    _truncated(path)
    with pytest.raises(ValueError, match=r"validation\.safetensors: not a readable safetensors") as error:
        load_split(path)
    assert "\n" not in str(error.value)


def test_calibration_subset_larger_than_the_split():
    split = {"input_ids": torch.zeros(32, 3, dtype=torch.int64), "labels": torch.zeros(32)}
    with pytest.raises(ValueError, match=r"calibration\.samples: 40 is larger than the calibration split"):
        calibration_subset(split, 40, seed=0)


def test_pretrained_config_not_json(tmp_path: Path):
    model = _pretrained_folder(tmp_path)
    (model / "config.json").write_text("{'num_hidden_layers': 6")  # not JSON
    with pytest.raises(ValueError, match=r"config\.json: not a JSON file") as error:
        BertSuperNetwork.from_pretrained(model)
    assert "\n" not in str(error.value)


def test_pretrained_weights_truncated_after_the_check(tmp_path: Path):
    """The start check reads headers; a file damaged later still fails with one line naming it."""
    model = _pretrained_folder(tmp_path)
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[:-64])
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file") as error:
        BertSuperNetwork.from_pretrained(model)
    assert "\n" not in str(error.value)


#: mistakes only a job can see -> the test that shows how it is handled (module::function)
JOB_CASES = {
    "nan-accuracy": "tests/test_bad_inputs.py::test_invalid_measurement_is_refused_at_gather",
    "negative-size": "tests/test_bad_inputs.py::test_invalid_measurement_is_refused_at_gather",
    "nan-latency": "tests/test_bad_inputs.py::test_invalid_measurement_is_refused_at_gather",
    "negative-latency": "tests/test_bad_inputs.py::test_invalid_measurement_is_refused_at_gather",
    "evaluation-returns-invalid": "tests/test_shard.py::test_an_invalid_fresh_evaluation_is_not_stored",
    "cached-evaluation-corrupt": "tests/test_shard.py::test_a_corrupt_cached_evaluation_is_evaluated_again",
    "cached-evaluation-out-of-range": (
        "tests/test_shard.py::test_a_corrupt_cached_evaluation_is_evaluated_again"
    ),
    "split-file-truncated": "tests/test_bad_inputs.py::test_split_file_truncated",
    "supernet-file-corrupt": "tests/test_bert_supernet.py::test_load_supernet_errors_name_the_file",
    "calibration-subset-too-large": "tests/test_bad_inputs.py::test_calibration_subset_larger_than_the_split",
    "pretrained-config-not-json": "tests/test_bad_inputs.py::test_pretrained_config_not_json",
    "pretrained-weights-damaged-later": (
        "tests/test_bad_inputs.py::test_pretrained_weights_truncated_after_the_check"
    ),
    "training-checkpoint-corrupt": "tests/test_training.py::test_corrupt_checkpoint_is_discarded_not_fatal",
    "training-checkpoint-stale": "tests/test_training.py::test_stale_checkpoints_are_discarded_not_resumed",
    "wrong-cpu-for-host": "tests/test_shard.py::test_host_profile_refuses_the_wrong_cpu",
}

#: every mistake found at workflow start: the config cases and the results folder's two
START_CASES = {*CONFIG_CASES, "results-not-a-folder", "results-read-only"}


def test_catalogue_has_25_entries_each_with_a_test():
    assert len(START_CASES) + len(JOB_CASES) >= 25
    for case, node in JOB_CASES.items():
        path, function = node.split("::")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, function, None)), (case, node)


def test_docs_list_the_whole_catalogue():
    docs = (ROOT / "docs" / "bad-inputs.md").read_text()
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", docs, flags=re.MULTILINE))
    assert listed == set(START_CASES) | set(JOB_CASES)
    assert "docs/bad-inputs.md" in (ROOT / "README.md").read_text()
