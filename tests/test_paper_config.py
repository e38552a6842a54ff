"""config/paper.yaml: the paper-scale workflow config points the same data and super-network rules at GLUE
SST-2 files and a Hugging Face BERT folder on user paths.

Nothing can be downloaded here, so the test writes GLUE SST-2 files in GLUE's own layout (a few labelled
sentences) and a tiny randomly initialized BERT (BERT-base's 12 layers, heads and FFN choices, a small hidden
size) in the Hugging Face layout, on exactly the paths the config names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from simqnas.config import ConfigError, check_config
from simqnas.data import load_split
from simqnas.space import SearchSpace
from simqnas.supernets import build_supernet, resolve_space

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "report", "profiles", "envs")
WORDS = ["good", "bad", "great", "awful", "fine", "dull", "movie", "plot", "actors", "film", "a", "the"]


def copy_workflow(target: Path) -> Path:
    for name in WORKFLOW_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target / name)
        else:
            shutil.copy(ROOT / name, target / name)
    return target


def paper_config() -> dict:
    return yaml.safe_load(PAPER.read_text())


def write_sst2(folder: Path, rows: int) -> None:
    """GLUE SST-2's train.tsv and dev.tsv: a `sentence<TAB>label` header, one sentence a line."""
    folder.mkdir(parents=True)
    for name, count in (("train.tsv", rows), ("dev.tsv", rows // 4)):
        lines = ["sentence\tlabel"]
        for i in range(count):
            words = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(3 + i % 5))
            lines.append(f"{words} \t{i % 2}")
        (folder / name).write_text("\n".join(lines) + "\n")


def write_tiny_bert(folder: Path) -> None:
    """A Hugging Face BERT folder (config.json, model.safetensors, tokenizer files) with BERT-base's depth,
    heads and FFN size, so the paper's search space fits it, but a 48-wide hidden state."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=48,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory) -> Path:
    """A copy of the workflow with the paper config's user files in place (split sizes scaled down)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("paper"))
    config = paper_config()
    # the BERT row only: the image families' ImageNet folder and BEiT-3 checkpoint are other tests' business
    config["datasets"] = {"sst2": config["datasets"]["sst2"]}
    config["supernets"] = {"bert": config["supernets"]["bert"]}
    config["experiments"] = {k: v for k, v in config["experiments"].items() if v["supernet"] == "bert"}
    write_sst2(workdir / config["datasets"]["sst2"]["path"], rows=80)
    write_tiny_bert(workdir / config["supernets"]["bert"]["pretrained"])
    # 80 + 20 sentences: the paper's 2,000 / 1,000 / 2,000 held-out rows would not fit
    config["datasets"]["sst2"]["splits"].update(validation=16, calibration=12, test=10)
    config["supernets"]["bert"]["calibration"]["samples"] = 12
    (workdir / "config" / "paper-small.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def snakemake(workdir: Path, *args: str, config: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", *args, "--configfile", config],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_missing_user_files_stop_the_workflow_with_one_line(tmp_path: Path) -> None:
    config = paper_config()
    dataset = config["datasets"]["sst2"]
    assert (dataset["source"], dataset["path"]) == ("glue_sst2", "data/glue/SST-2")
    with pytest.raises(ConfigError, match=r"^config: datasets\.sst2\.path: not found: data/glue/SST-2$"):
        check_config(config, tmp_path)

    (tmp_path / "wf").mkdir()
    workdir = copy_workflow(tmp_path / "wf")
    run = snakemake(workdir, "-n", "results/figures", config="config/paper.yaml")
    assert run.returncode != 0
    assert "config: datasets.sst2.path: not found: data/glue/SST-2" in run.stdout + run.stderr
    assert not (workdir / "results").exists() or not any((workdir / "results").rglob("*.safetensors"))


def test_sst2_files_go_through_the_same_data_rule(user_files: Path) -> None:
    plan = snakemake(user_files, "-n", "results/figures", config="config/paper-small.yaml")
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    for job in ("finetune_teacher", "train_supernet", "baseline_latency", "propose"):
        assert job in plan.stdout

    target = "results/data/sst2/train.safetensors"
    run = snakemake(user_files, target, config="config/paper-small.yaml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    splits = {
        name: load_split(user_files / f"results/data/sst2/{name}.safetensors")
        for name in ("train", "validation", "calibration", "test")
    }
    # 80 train + 20 dev sentences pooled: 16 validation, 12 calibration, 10 test, the rest ("all") to train
    sizes = {name: len(split["labels"]) for name, split in splits.items()}
    assert sizes == {"train": 62, "validation": 16, "calibration": 12, "test": 10}
    assert splits["train"]["input_ids"].shape[1] == 128  # the config's max_length
    # tokenized by the BERT folder's own vocabulary: ids beyond it would mean another tokenizer
    assert int(splits["train"]["input_ids"].max()) < len(WORDS) + 5
    assert set(splits["validation"]["labels"].tolist()) == {0, 1}


def test_the_bert_folder_is_the_paper_space_s_super_network(user_files: Path) -> None:
    config = yaml.safe_load((user_files / "config" / "paper-small.yaml").read_text())
    spec = dict(config["supernets"]["bert"])
    spec["pretrained"] = str(user_files / spec["pretrained"])
    network = build_supernet(spec, config["datasets"]["sst2"], seed=0)
    space = resolve_space(SearchSpace.from_yaml(ROOT / spec["space"]), network)
    assert len(space.quantization.layers) == 74 == len(network.quantizable_layers())
    with torch.no_grad():
        logits = network(*network.example_inputs(2))
    assert logits.shape == (2, 2)
