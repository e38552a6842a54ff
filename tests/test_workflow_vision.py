"""The unchanged DAG on the image families: config/smoke-vision.yaml, a small ViT and a small Multiway
transformer trained from scratch on Fashion-MNIST without a teacher, real INC quantization and compiled
latency (a few minutes on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from simqnas.data.image import FASHION_MNIST_DIR
from simqnas.headline import PAPER_CLAIMS
from tests.workflow_utils import ROOT, all_evaluations, copy_workflow, snakemake

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
    assert summary["validation_and_test_from_held_out_part"] and len(summary["classes"]) == 10
    metrics = json.loads((results / "vit" / "supernet.json").read_text())
    assert len(metrics["epochs"]) == 1 and len(metrics["epochs"][0]["step_losses"]) == 8
    assert 0 <= metrics["smallest_validation_accuracy"] <= 1


def test_vit_figures_evaluations_and_headline(vision_run: Path):
    results = vision_run / "results"
    for name in ("fig1_accuracy_vs_size", "fig1_accuracy_vs_latency", "fig2_hypervolume_size"):
        assert (results / "figures" / "vit" / f"{name}.png").stat().st_size > 10_000, name
    evaluations = all_evaluations(results, "vit")
    for key, run in evaluations.groupby(["objective", "algorithm"]):
        assert len(run) == 6 and run["genome"].is_unique, key
        assert run["accuracy"].between(0, 1).all() and (run["size_bytes"] > 0).all(), key
    headline = pd.read_csv(results / "tables" / "vit_headline.csv")
    assert list(headline["paper"]) == [claim.paper for claim in PAPER_CLAIMS["vit"]]


def test_multiway_runs_its_vision_path_through_the_dag(vision_run: Path):
    results = vision_run / "results"
    assert (results / "figures" / "multiway" / "fig1_accuracy_vs_size.png").stat().st_size > 10_000
    evaluations = all_evaluations(results, "multiway")
    assert len(evaluations) == 6 and evaluations["genome"].is_unique
    assert evaluations["accuracy"].between(0, 1).all() and (evaluations["size_bytes"] > 0).all()
    baselines = pd.read_csv(results / "multiway" / "summary" / "baselines.csv").set_index("baseline")
    assert baselines.loc["int8", "size_bytes"] < baselines.loc["fp32", "size_bytes"] / 2


def _vision_supernets() -> dict:
    return yaml.safe_load((ROOT / "config" / "smoke-vision.yaml").read_text())["supernets"]


#: the ResNet50/101/152 shapes the paper compares with, and those the smoke config trains
RESNET_REFERENCES = ("resnet50", "resnet101", "resnet152")
CONFIGURED_REFERENCES = tuple(_vision_supernets().get("resnet", {}).get("references", ()))


def test_every_searched_network_is_in_the_combined_headline_table(vision_run: Path):
    headline = pd.read_csv(vision_run / "results" / "tables" / "headline.csv", keep_default_na=False)
    assert {"vit", "multiway"} <= set(headline["network"])
    assert not set(headline["network"]) & set(RESNET_REFERENCES)  # references are never searched


@pytest.mark.skipif(
    not _vision_supernets().get("resnet", {}).get("references"),
    reason="config/smoke-vision.yaml has no resnet super-network with references yet",
)
def test_resnet_is_compared_with_its_reference_networks(vision_run: Path):
    results = vision_run / "results"
    baselines = pd.read_csv(results / "resnet" / "summary" / "baselines.csv")
    assert set(baselines.loc[baselines["reference"].astype(bool), "network"]) == set(CONFIGURED_REFERENCES)
    for reference in CONFIGURED_REFERENCES:
        rows = baselines[baselines["network"] == reference]
        assert set(rows["baseline"]) == {"fp32", "int8"} and rows["reference"].all(), reference
    assert (results / "figures" / "resnet" / "fig1_accuracy_vs_size.png").stat().st_size > 10_000
    headline = pd.read_csv(results / "tables" / "headline.csv", keep_default_na=False)
    resnet = headline[headline["network"] == "resnet"]
    assert len(resnet) == len(PAPER_CLAIMS["resnet"])
    # a claim against a reference the config does not name says so instead of borrowing another's baseline
    missing = range(len(CONFIGURED_REFERENCES), len(RESNET_REFERENCES))
    unconfigured = {f"(no reference {i + 1} configured)" for i in missing}
    assert set(resnet["versus"]) == {f"{name} all-INT8" for name in CONFIGURED_REFERENCES} | unconfigured
    # a reference is trained and measured, never summarized or drawn on its own
    for reference in CONFIGURED_REFERENCES:
        assert (results / reference / "baseline" / "int8.json").is_file(), reference
        assert not (results / reference / "summary").exists(), reference
        assert not (results / "figures" / reference).exists(), reference
