"""The unchanged DAG on the image families: config/smoke-vision.yaml, a small ViT and a small Multiway
transformer trained from scratch on Fashion-MNIST without a teacher, real INC quantization and compiled
latency (a few minutes on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from simqnas.data.image import FASHION_MNIST_DIR
from simqnas.headline import PAPER_CLAIMS
from tests.workflow_utils import copy_workflow, snakemake

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed"),
]


@pytest.fixture(scope="module")
def vision_run(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke-vision"))
    result = snakemake(workdir, "results/figures", configfile="config/smoke-vision.yaml")
    if result.returncode != 0:
        pytest.fail(f"vision smoke workflow failed:\n{result.stderr[-6000:]}")
    return workdir


def test_vit_trains_from_scratch_without_a_teacher(vision_run: Path):
    results = vision_run / "results"
    assert not (results / "vit" / "teacher.safetensors").exists()
    summary = json.loads((results / "data" / "fashion" / "summary.json").read_text())
    assert summary["validation_from_held_out_part"] and len(summary["classes"]) == 10
    metrics = json.loads((results / "vit" / "supernet.json").read_text())
    assert len(metrics["epochs"]) == 1 and len(metrics["epochs"][0]["step_losses"]) == 8
    assert 0 <= metrics["smallest_validation_accuracy"] <= 1


def test_vit_figures_evaluations_and_headline(vision_run: Path):
    results = vision_run / "results"
    for name in ("fig1_accuracy_vs_size", "fig1_accuracy_vs_latency", "fig2_hypervolume_size"):
        assert (results / "figures" / "vit" / f"{name}.png").stat().st_size > 10_000, name
    evaluations = pd.read_csv(results / "vit" / "summary" / "evaluations.csv")
    for key, run in evaluations.groupby(["objective", "algorithm"]):
        assert len(run) == 6 and run["genome"].is_unique, key
        assert run["accuracy"].between(0, 1).all() and (run["size_bytes"] > 0).all(), key
    headline = pd.read_csv(results / "tables" / "vit_headline.csv")
    assert list(headline["paper"]) == [claim.paper for claim in PAPER_CLAIMS["vit"]]


def test_multiway_runs_its_vision_path_through_the_dag(vision_run: Path):
    results = vision_run / "results"
    assert (results / "figures" / "multiway" / "fig1_accuracy_vs_size.png").stat().st_size > 10_000
    evaluations = pd.read_csv(results / "multiway" / "summary" / "evaluations.csv")
    assert len(evaluations) == 6 and evaluations["genome"].is_unique
    assert evaluations["accuracy"].between(0, 1).all() and (evaluations["size_bytes"] > 0).all()
    baselines = pd.read_csv(results / "multiway" / "summary" / "baselines.csv").set_index("baseline")
    assert baselines.loc["int8", "size_bytes"] < baselines.loc["fp32", "size_bytes"] / 2
