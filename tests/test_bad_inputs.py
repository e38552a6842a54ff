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
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file

from simqnas.config import ConfigError, check_config, check_config_files, check_results_folder
from simqnas.data import load_split, save_split
from simqnas.data.prepare import calibration_subset
from simqnas.embedded import minilm_dir
from simqnas.history import gather_iteration, history_from_tables
from simqnas.io import atomic_path, remove_stale_temporaries, write_text_atomic
from simqnas.search import get_algorithm
from simqnas.space import SearchSpace, count_text
from simqnas.supernets.bert import BertSuperNetwork
from tests.workflow_utils import ROOT, copy_workflow, snakemake, snakemake_env

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


def _space_file(text: str | bytes) -> Mutation:
    """bert's space read from a space file with this content."""

    def mutate(config: dict, tmp: Path) -> None:
        path = tmp / "space.yaml"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        config["supernets"]["bert"]["space"] = str(path)

    return mutate


MINILM_SPACE = (ROOT / "config/spaces/minilm.yaml").read_text()
#: ten lines of YAML that stand for 10^9 values (each alias repeats the previous list ten times)
ALIAS_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)
)


def _alias_bomb() -> list:
    """The in-memory form of an alias bomb: one list shared ten times at each of nine levels."""
    value: list = ["x"] * 10
    for _ in range(8):
        value = [value] * 10
    return value


def _space_with(**changes) -> Mutation:
    """bert's space inline: the MiniLM space with some parameters replaced."""

    def mutate(config: dict, _: Path) -> None:
        space = yaml.safe_load(MINILM_SPACE)
        for key, value in changes.items():
            *parents, last = key.split(".")
            node = space
            for part in parents:
                node = node[part]
            node[last] = value
        config["supernets"]["bert"]["space"] = space

    return mutate


def _saved_with(
    change: Callable[[dict, dict], None], name: str = "supernet.safetensors"
) -> Callable[[Path], Path]:
    """A saved super-network whose tensors or hyperparameters `change` edits (then saved again)."""

    def make(tmp: Path) -> Path:
        path = _saved_supernet(tmp)
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            metadata = f.metadata()
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
        hyperparameters = json.loads(metadata["hyperparameters"])
        change(tensors, hyperparameters)
        metadata["hyperparameters"] = json.dumps(hyperparameters)
        save_file(tensors, str(tmp / name), metadata=metadata)
        return tmp / name

    return make


def _nan_weight(tensors: dict, _: dict) -> None:
    tensors["bert.encoder.layer.0.attention.self.query.weight"][0, 0] = float("nan")


def _huge_hyperparameter(_: dict, hyperparameters: dict) -> None:
    hyperparameters["hidden_size"] = 10**12  # 4 TB of weights for one layer


def _many_layers(_: dict, hyperparameters: dict) -> None:
    hyperparameters["num_layers"] = 10**6


def _other_width(_: dict, hyperparameters: dict) -> None:
    hyperparameters["ffn_size"] = 16


def _too_many_runs(config: dict, _: Path) -> None:
    config["experiments"]["bert"]["seeds"] = list(range(5000))


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
    "mixup-on-text": (
        _set("supernets.bert.training.mixup", 0.8),
        ("supernets.bert.training.mixup", "mixes images, and dataset 'sentences' is text"),
    ),
    "negative-weight-decay": (
        _set("supernets.bert.training.weight_decay", -0.1),
        ("supernets.bert.training.weight_decay", "-0.1"),
    ),
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
    "nan-number": (
        _set("supernets.bert.training.lr", float("nan")),
        ("supernets.bert.training.lr", "nan is not a finite number"),
    ),
    "infinite-number": (
        _set("hosts.local.trim", float("inf")),
        ("hosts.local.trim", "inf is not a finite number"),
    ),
    "nan-choice": (
        _space_with(**{"elastic.ffn_size.choices": [1536, float("nan")]}),
        ("supernets.bert.space.elastic.ffn_size.choices.1", "nan is not a finite number"),
    ),
    "infinite-margin": (
        _set("iso_accuracy_margin_pp", float("inf")),
        ("iso_accuracy_margin_pp", "inf is not a finite number"),
    ),
    "margin-above-100": (
        _set("iso_accuracy_margin_pp", 150),
        ("iso_accuracy_margin_pp", "150 is greater than the maximum of 100"),
    ),
    "seed-beyond-64-bits": (
        _set("experiments.bert.seeds", [2**64]),
        ("experiments.bert.seeds.0", "18446744073709551616 is beyond 64 bits"),
    ),
    "seed-beyond-32-bits": (
        _set("experiments.bert.seeds", [2**32]),
        ("experiments.bert.seeds.0", "4294967296 is greater than the maximum of 4294967295"),
    ),
    "integer-beyond-64-bits": (
        _set("datasets.sentences.splits.train", 10**40),
        ("datasets.sentences.splits.train", "is beyond 64 bits"),
    ),
    "max-length-beyond-positions": (
        _set("datasets.sentences.max_length", 1024),
        ("datasets.sentences.max_length", "1024 is beyond the 512 position embeddings of supernets.bert"),
    ),
    "choice-the-network-cannot-build": (
        _space_with(**{"elastic.num_heads.choices": [12, 7.5, 4]}),
        ("supernets.bert.space", "cannot run it", "num_heads[0]: 7.5 is not an integer"),
    ),
    "choice-beyond-the-network": (
        _space_with(**{"elastic.num_layers.choices": [3, 4, 5, 6, 7]}),
        ("supernets.bert.space", "cannot run it", "num_layers[0]: 7 is not an integer in [1, 6]"),
    ),
    "quantization-layers-mismatch": (
        _space_with(**{"quantization.layers": 37}),
        ("supernets.bert.space", "37 layers, the bert super-network has 38 quantizable layers"),
    ),
    "duplicate-key-in-space-file": (
        _space_file(
            MINILM_SPACE.replace("elastic:\n", "elastic:\n  num_heads: {count: 1, choices: [4]}\n", 1)
        ),
        ("space.yaml", "duplicate key 'num_heads'"),
    ),
    "space-file-alias-bomb": (
        _space_file(ALIAS_BOMB),
        ("space.yaml", "stands for more than 1,000,000 values"),
    ),
    "space-file-not-utf8": (
        _space_file(MINILM_SPACE.encode("utf-8").replace(b"elastic", b"elas\xe9tic", 1)),
        ("space.yaml", "not UTF-8 text (byte 0xe9"),
    ),
    "space-file-utf16": (
        _space_file(MINILM_SPACE.encode("utf-16")),
        ("space.yaml", "UTF-16 text; save it as UTF-8"),
    ),
    "alias-bomb-in-memory": (
        _set("supernets.bert.architecture", {"pooling": _alias_bomb()}),
        ("config: stands for more than 1,000,000 values",),
    ),
    "budget-too-many-iterations": (
        _set("experiments.bert.evaluations", 10**6),
        ("experiments.bert.evaluations", "333334 iterations per run, at most 1000"),
    ),
    "budget-too-many-runs": (
        _too_many_runs,
        ("experiments.bert", "at most 20000 in all"),
    ),
    "checkpoint-non-finite": (
        _checkpoint(_saved_with(_nan_weight)),
        ("supernets.bert.checkpoint", "tensor bert.encoder.layer.0.attention.self.query.weight holds NaN"),
    ),
    "checkpoint-impossible-size": (
        _checkpoint(_saved_with(_huge_hyperparameter)),
        ("supernets.bert.checkpoint", "hidden_size=1000000000000 would build a network larger than"),
    ),
    "checkpoint-too-many-layers": (
        _checkpoint(_saved_with(_many_layers)),
        ("supernets.bert.checkpoint", "num_layers=1000000 would build a network larger than", "tensors"),
    ),
    "checkpoint-hyperparameters-do-not-fit": (
        _checkpoint(_saved_with(_other_width)),
        ("supernets.bert.checkpoint", "the weights do not fit its hyperparameters"),
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


# ------------------------------------------------------------------------------ torch checkpoint files

SMOKE_VISION = yaml.safe_load((ROOT / "config" / "smoke-vision.yaml").read_text())


class _Payload:
    """Pickled code: unpickling it would run `os.system`; `weights_only=True` refuses it."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _torch_file(kind: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "ofa.pth"
        if kind == "pickled-code":
            torch.save({"state_dict": {"w": torch.zeros(2)}, "payload": _Payload()}, path)
        elif kind == "zero-filled":
            path.write_bytes(bytes(4096))
        elif kind == "non-finite":
            torch.save({"state_dict": {"w": torch.tensor([0.0, float("inf")])}}, path)
        else:
            torch.save({"state_dict": {"w": torch.zeros(4096)}}, path)
            _truncated(path)
        return path

    return make


#: id -> (the torch file as `supernets.resnet.pretrained` of config/smoke-vision.yaml, message fragments)
TORCH_FILE_CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    f"pretrained-torch-file-{kind}": (_torch_file(kind), ("supernets.resnet.pretrained", "ofa.pth", fragment))
    for kind, fragment in (
        ("pickled-code", "not a readable weights-only torch file"),
        ("zero-filled", "not a readable weights-only torch file"),
        ("truncated", "not a readable weights-only torch file"),
        ("non-finite", "tensor w holds NaN or infinite values"),
    )
}


@pytest.mark.parametrize("case", sorted(TORCH_FILE_CASES))
def test_torch_checkpoint_mistake_is_one_line_at_workflow_start(case: str, tmp_path: Path, capfd):
    config = copy.deepcopy(SMOKE_VISION)
    make, fragments = TORCH_FILE_CASES[case]
    config["supernets"]["resnet"]["pretrained"] = str(make(tmp_path))
    with pytest.raises(ConfigError) as error:
        check_config(config, base=ROOT)
    message = str(error.value)
    assert "\n" not in message and message.startswith("config: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "pwned" not in capfd.readouterr().out  # the pickled code never ran


def test_mixing_the_images_of_a_distilled_training_is_refused_at_workflow_start():
    config = copy.deepcopy(SMOKE_VISION)
    config["supernets"]["vit"]["teacher"] = {"epochs": 1}
    config["supernets"]["vit"]["training"]["cutmix"] = 1.0
    with pytest.raises(ConfigError, match=r"^config: supernets.vit.training.cutmix: not with a teacher"):
        check_config(config, base=ROOT)


# ------------------------------------------------------------------------------ the config files themselves

SMOKE_TEXT = (ROOT / "config" / "smoke.yaml").read_text()
SMOKE_LINES = SMOKE_TEXT.splitlines()
#: the line a key appended after a blank line gets
APPENDED = len(SMOKE_LINES) + 2
SEEDS_LINE = SMOKE_LINES.index("    seeds: [0]") + 1

#: id -> (content of the config file, fragments of the one-line message); read by `check_config_files`
#: before Snakemake's loader (the embedded default) or after it (--configfile)
FILE_CASES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "duplicate-key": (
        (SMOKE_TEXT + "\nthreads: 4\n").encode(),
        (f"bad.yaml: duplicate key 'threads' (lines {SMOKE_LINES.index('threads: 2') + 1} and {APPENDED})",),
    ),
    "duplicate-experiments-block": (
        (SMOKE_TEXT + "\nexperiments:\n  bert: {}\n").encode(),
        (
            "bad.yaml: duplicate key 'experiments'",
            f"(lines {SMOKE_LINES.index('experiments:') + 1} and {APPENDED})",
        ),
    ),
    "duplicate-nested-key": (
        SMOKE_TEXT.replace("    seeds: [0]\n", "    seeds: [0]\n    seeds: [1]\n", 1).encode(),
        (f"bad.yaml: duplicate key 'seeds' (lines {SEEDS_LINE} and {SEEDS_LINE + 1})",),
    ),
    "config-alias-bomb": (
        (SMOKE_TEXT + "\n" + ALIAS_BOMB).encode(),
        ("bad.yaml: stands for more than 1,000,000 values",),
    ),
    "config-not-utf8": (
        SMOKE_TEXT.replace("# CI smoke run", "# CI sm\xf6ke run").encode("latin-1"),
        ("bad.yaml: not UTF-8 text (byte 0xf6 at position 7)",),
    ),
    "config-utf16": (SMOKE_TEXT.encode("utf-16"), ("bad.yaml: UTF-16 text; save it as UTF-8",)),
    "config-not-a-mapping": (b"- threads: 2\n", ("bad.yaml: must be a mapping of keys",)),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_config_file_mistake_is_one_line_naming_it(case: str, tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(FILE_CASES[case][0])
    with pytest.raises(ConfigError) as error:
        check_config_files([path])
    message = str(error.value)
    assert "\n" not in message and message.startswith("config: "), message
    for fragment in FILE_CASES[case][1]:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_the_shipped_configs_have_no_duplicate_keys():
    check_config_files(sorted((ROOT / "config").glob("*.yaml")))


# ------------------------------------------------------------------------- in seconds, whatever the input


def _deep_space(depth_genes: int = 24) -> dict:
    """A valid space with `depth_genes` depth genes (3 choices each), each dropping two 2-choice genes."""
    elastic = {f"d{k}": {"count": 1, "choices": [0, 1, 2]} for k in range(depth_genes)}
    elastic["w"] = {"count": 2 * depth_genes, "choices": [1, 2]}
    depth = [{"param": f"d{k}", "units": [{"w": [2 * k]}, {"w": [2 * k + 1]}]} for k in range(depth_genes)]
    return {
        "elastic": elastic,
        "quantization": {"layers": 20_000, "choices": ["int8", "fp32"]},
        "depth": depth,
    }


def _time_file(content: bytes) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        (tmp / "bad.yaml").write_bytes(content)
        with pytest.raises(ConfigError):
            check_config_files([tmp / "bad.yaml"])

    return check


def _time_config(mutate: Mutation) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        config = copy.deepcopy(SMOKE)
        mutate(config, tmp)
        with pytest.raises(ConfigError):
            check_config(config, base=ROOT)

    return check


def _time_huge_space(tmp: Path) -> None:
    space = SearchSpace.from_dict(_deep_space())
    sizes = space.sizes()  # exact, in linear time (3^24 depth combinations are never enumerated)
    assert sizes["active_arch"] == 3**0 * (1 + 2 + 4) ** 24 * 3**0
    assert count_text(sizes["joint"]).startswith("about ")  # ~6,000 digits: beyond Python's int-to-str
    _time_config(_set("supernets.bert.space", _deep_space()))(tmp)  # refused: not the network's genes


#: class of input -> a start check on it that must refuse it (or size it) quickly
TIMED_CLASSES: dict[str, Callable[[Path], None]] = {
    "alias-bomb-file": _time_file((SMOKE_TEXT + "\n" + ALIAS_BOMB).encode()),
    "alias-bomb-in-memory": _time_config(_set("supernets.bert.architecture", {"pooling": _alias_bomb()})),
    "not-utf8": _time_file(SMOKE_TEXT.encode("utf-8").replace(b"smoke", b"sm\xf6ke")),
    "utf16": _time_file(SMOKE_TEXT.encode("utf-16")),
    "huge-space": _time_huge_space,
    "huge-budget": _time_config(_set("experiments.bert.evaluations", 10**7)),
    "huge-seed-list": _time_config(_set("experiments.bert.seeds", list(range(100_000)))),
}


@pytest.mark.parametrize("case", sorted(TIMED_CLASSES))
def test_the_start_check_ends_in_seconds(case: str, tmp_path: Path):
    started = time.perf_counter()
    TIMED_CLASSES[case](tmp_path)
    assert time.perf_counter() - started < 10


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


#: config files Snakemake itself would accept (keeping the last of two keys), refused by the start check
SNAKEMAKE_FILE_CASES = ("duplicate-experiments-block", "config-alias-bomb")


@pytest.mark.parametrize("case", SNAKEMAKE_FILE_CASES)
def test_snakemake_refuses_the_config_file_before_any_job(case: str, workflow_copy: Path):
    (workflow_copy / "config" / "bad.yaml").write_bytes(FILE_CASES[case][0])
    result = snakemake(workflow_copy, "-n", "results/figures", configfile="config/bad.yaml", timeout=300)
    assert result.returncode != 0
    lines = _error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for fragment in FILE_CASES[case][1]:
        assert fragment in lines[0], lines[0]
    assert not (workflow_copy / "results").exists()


def test_snakemake_refuses_a_duplicate_key_in_the_embedded_default(tmp_path: Path):
    """The embedded default is read strictly before Snakemake's `configfile:` loader reads it."""
    workflow = copy_workflow(tmp_path / "workflow")
    default = workflow / "config" / "config.yaml"
    default.write_text(default.read_text() + "\nshards: 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "-n"],
        cwd=workflow,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and "config.yaml: duplicate key 'shards'" in lines[0], result.stderr


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


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_get_the_permissions_of_the_umask(tmp_path: Path, umask: int):
    previous = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "out.txt", "result")
        plain = tmp_path / "plain.txt"
        plain.write_text("result")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path: Path):
    target = tmp_path / "evaluated.csv"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from simqnas.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_text('half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n",
            str(target),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert killed.returncode == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".evaluated.csv.") and not target.exists()
    with atomic_path(target) as tmp:  # a live writer's temporary is never touched
        tmp.write_text("done")
        assert tmp.exists() and remove_stale_temporaries(target) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluated.csv"]


def test_an_exhausted_space_ends_the_run_cleanly(tmp_path: Path, caplog):
    """A budget larger than the space: every algorithm proposes what is left, then nothing; the empty
    iteration is gathered into an empty table (no shards, no latency job) and the history reads on."""
    space = SearchSpace.from_dict(
        {
            "elastic": {"a": {"count": 1, "choices": [1, 2]}},
            "quantization": {"layers": 1, "choices": ["int8", "fp32"]},
        }
    )
    options = {"linas": {"inner_evaluations": 60, "inner_population": 6, "cv_folds": 2}}
    for name in ("random", "nsga2", "linas"):
        tables = []
        for iteration in range(3):
            history = history_from_tables(tables, space.n_genes, "size")
            genomes = get_algorithm(name, **options.get(name, {})).propose(space, history, 3, 0, iteration)
            shards = []
            if len(genomes):
                rows = [{"candidate": i, "accuracy": 0.5, "size_bytes": 10 + i} for i in range(len(genomes))]
                shards = [_write(tmp_path / f"{name}{iteration}-shard0.csv", rows)]
            with caplog.at_level("WARNING", logger="simqnas.history"):
                table = gather_iteration(genomes, shards, [], iteration)
            tables.append(tmp_path / f"{name}{iteration}.csv")
            table.to_csv(tables[-1], index=False)
        assert [len(pd.read_csv(t)) for t in tables] == [3, 1, 0], name
        assert len(history_from_tables(tables, space.n_genes, "size").genomes) == 4  # the whole space
    assert "no candidates left, every network of the space is evaluated" in caplog.text


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
    "wrong-cpu-for-host": "tests/test_host_profile.py::test_host_profile_refuses_the_wrong_cpu",
    "training-diverges": (
        "tests/test_training.py::test_a_diverging_run_stops_with_an_error_and_writes_no_checkpoint"
    ),
    "training-weights-non-finite": (
        "tests/test_training.py::test_non_finite_weights_stop_training_before_a_checkpoint"
    ),
    "cached-evaluation-not-a-file": (
        "tests/test_evalstore.py::test_anything_in_an_entry_s_place_is_a_logged_miss"
    ),
    "cached-evaluation-wrong-types": "tests/test_evalstore.py::test_wrong_types_are_a_logged_miss",
    "cached-evaluation-check-fails": (
        "tests/test_evalstore.py::test_a_record_check_that_fails_on_the_record_is_a_miss"
    ),
    "killed-writer-temporary": (
        "tests/test_bad_inputs.py::test_a_killed_writers_temporary_is_removed_by_the_next_write"
    ),
    "space-exhausted": "tests/test_bad_inputs.py::test_an_exhausted_space_ends_the_run_cleanly",
    "nan-logits": (
        "tests/test_candidate.py::test_accuracy_refuses_non_finite_logits_instead_of_scoring_them_class_0"
    ),
    "int8-layer-compiled-to-fp32": (
        "tests/test_shard.py::test_an_int8_layer_that_compiles_to_fp32_code_is_an_error_not_a_latency"
    ),
    "stale-recipe-latency-record": "tests/test_shard.py::test_latency_records_are_checked",
}

#: every mistake found at workflow start: the config cases, the config files', the torch checkpoint files',
#: the results folder's two and a vision config's one
START_CASES = {
    *CONFIG_CASES,
    *FILE_CASES,
    *TORCH_FILE_CASES,
    "results-not-a-folder",
    "results-read-only",
    "mixup-with-teacher",
}


def test_catalogue_entries_each_have_a_test():
    assert not (set(CONFIG_CASES) & set(FILE_CASES)) and not (START_CASES & set(JOB_CASES))
    for case, node in JOB_CASES.items():
        path, function = node.split("::")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, function, None)), (case, node)


def test_docs_list_the_whole_catalogue():
    docs = (ROOT / "docs" / "bad-inputs.md").read_text()
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", docs, flags=re.MULTILINE))
    assert listed == set(START_CASES) | set(JOB_CASES)
    total = len(START_CASES) + len(JOB_CASES)
    assert f"**{total} bad inputs** ({len(START_CASES)} found at workflow start" in docs
    assert "docs/bad-inputs.md" in (ROOT / "README.md").read_text()
