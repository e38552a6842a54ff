"""Config validation: the embedded configs pass, and mistakes give one line naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from simqnas.config import ConfigError, SearchRun, check_config

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.fixture
def default() -> dict:
    return load("config.yaml")


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_embedded_configs_pass(name):
    runs = check_config(load(name), base=ROOT)
    assert runs and all(isinstance(r, SearchRun) for r in runs)


def test_runs_are_the_cross_product_without_duplicates(default):
    runs = check_config(default, base=ROOT)
    # every experiment's supernet x spaces x objectives x algorithms x seeds; a run two experiments name
    # (the ablation's joint runs are the bert experiment's LINAS runs) is one run
    expected = {
        (e["supernet"], space, objective, algorithm, seed)
        for e in default["experiments"].values()
        for space in e["spaces"]
        for objective in e["objectives"]
        for algorithm in e["algorithms"]
        for seed in e["seeds"]
    }
    names = [(r.net, r.space, r.objective, r.algorithm, r.seed) for r in runs]
    assert len(names) == len(set(names)) == len(expected) and set(names) == expected
    shared = ("bert", "joint", "size", "linas", 0)
    assert shared in expected and names.count(shared) == 1


def test_iterations_cover_the_budget_exactly():
    run = SearchRun("bert", "joint", "size", "linas", 0, population=10, evaluations=25, host=None)
    assert run.iterations == 3
    assert [run.iteration_size(i) for i in range(3)] == [10, 10, 5]


def mutate(config: dict, path: str, value) -> dict:
    config = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return config


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("threads", "two", "threads"),
        ("experiments.bert.population", 100, "experiments.bert.population"),
        ("experiments.bert.supernet", "gpt", "experiments.bert.supernet"),
        ("experiments.bert.algorithms", ["linas", "bayes"], "experiments.bert.algorithms"),
        ("experiments.bert.objectives", ["energy"], "experiments.bert.objectives"),
        ("experiments.bert.seeds", ["zero"], "experiments.bert.seeds"),
        ("experiments.bert_latency.host", None, "experiments.bert_latency.host"),
        ("experiments.bert_latency.host", "xeon9999", "experiments.bert_latency.host"),
        ("experiments.bert.typo", 1, "experiments.bert"),
        ("supernets.bert.family", "gpt", "supernets.bert.family"),
        ("supernets.bert.dataset", "imagenet", "supernets.bert.dataset"),
        ("supernets.bert.checkpoint", "missing/supernet.safetensors", "supernets.bert.checkpoint"),
        ("supernets.bert.space", {"elastic": {"num_heads": {"count": 2, "choices": []}}}, "num_heads"),
        ("supernets.bert.calibration", {"samples": 100000}, "supernets.bert.calibration.samples"),
        ("datasets.sentences.source", "fashion_mnist", "datasets.sentences.source"),
        ("hosts.xeon8380", {"threads": 4}, "hosts.xeon8380.feature"),
        ("datasets.sentences.splits.test", KeyError, "datasets.sentences.splits"),
        ("datasets.sentences.splits.test", 0, "datasets.sentences.splits.test"),
        ("datasets.sentences.splits.test", 3000, "datasets.sentences.splits"),
        ("iso_accuracy_margin_pp", -1, "iso_accuracy_margin_pp"),
        ("supernets.bert.training.processes", 0, "supernets.bert.training.processes"),
        ("supernets.bert.training.processes", 1000, "supernets.bert.training.processes: 1000 processes"),
        ("supernets.bert.training.device", "tpu", "supernets.bert.training.device"),
        ("supernets.bert.teacher.precision", "fp16", "supernets.bert.teacher.precision"),
        ("supernets.bert.training.workers", -1, "supernets.bert.training.workers"),
        ("datasets.sentences.stream", True, "datasets.sentences.stream: only an image_folder"),
    ],
)
def test_bad_config_names_the_key(default, path, value, expected):
    with pytest.raises(ConfigError) as error:
        check_config(mutate(default, path, value), base=ROOT)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("config: ") and expected in message, message


def test_references_are_fixed_networks_that_are_not_searched():
    """A network naming references on its own dataset passes; the references get no search runs."""
    config = load("smoke.yaml")
    for name in ("bert_ref_a", "bert_ref_b"):
        config["supernets"][name] = copy.deepcopy(config["supernets"]["bert"])
    config["supernets"]["bert"]["references"] = ["bert_ref_b", "bert_ref_a"]
    runs = check_config(config, base=ROOT)
    assert runs == check_config(load("smoke.yaml"), base=ROOT)
    assert {run.net for run in runs} == {"bert"}


def test_duplicate_references_are_refused():
    config = load("smoke.yaml")
    config["supernets"]["bert_ref"] = copy.deepcopy(config["supernets"]["bert"])
    config["supernets"]["bert"]["references"] = ["bert_ref", "bert_ref"]
    with pytest.raises(ConfigError, match=r"^config: supernets\.bert\.references: .*non-unique"):
        check_config(config, base=ROOT)


def test_execution_settings_pass_and_cuda_is_refused_only_where_the_jobs_run_here(default):
    """processes, device and precision are the job's; `cuda` is checked against this machine only for a run
    whose jobs run here (`devices`), since a cluster's submit host need not have the nodes' GPUs."""
    import torch

    config = mutate(default, "supernets.bert.training.processes", 2)
    config = mutate(config, "supernets.bert.training.precision", "bf16")
    config = mutate(config, "supernets.bert.teacher.device", "cuda")
    assert check_config(config, base=ROOT, networks=False)
    if torch.cuda.is_available():
        return
    with pytest.raises(ConfigError) as error:
        check_config(config, base=ROOT, networks=False, devices=True)
    assert str(error.value).startswith(
        "config: supernets.bert.teacher.device: 'cuda' but torch.cuda.is_available() is False"
    )
    assert "\n" not in str(error.value)
