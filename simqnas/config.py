"""Workflow configuration: schema validation with one-line errors, semantic checks, and the search runs.

The Snakefile calls `check_config` before building the DAG, so a typo fails in a second with a message that
names the offending key, never after hours of training.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from simqnas.space import SearchSpace, SpaceError, space_from_spec

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"

TEXT_SOURCES = {"sentence_polarity", "glue_sst2"}
IMAGE_SOURCES = {"fashion_mnist", "image_folder"}
SOURCES_NEEDING_PATH = {"glue_sst2", "image_folder"}
FAMILY_MODALITY = {"bert": "text", "vit": "image", "multiway": "image", "resnet": "image"}
_TRANSFORMER_SHAPE = {"num_layers", "num_heads", "ffn_size", "hidden_size", "patch_size", "dropout"}
#: the `architecture` keys each family's `from_config` reads (the schema lists their union)
ARCHITECTURE_KEYS = {
    "bert": {"pooling"},
    "vit": _TRANSFORMER_SHAPE | {"attention_dropout"},
    "multiway": _TRANSFORMER_SHAPE | {"attention_dropout", "fixed_ends"},
    "resnet": {
        "stem_channels",
        "stage_widths",
        "base_depths",
        "depth_choices",
        "expand_ratios",
        "width_mults",
        "stem_stride",
        "max_pool",
        "channel_divisor",
    },
}
#: files a `pretrained` folder must hold, per family (what its loader reads)
PRETRAINED_FILES = {"bert": ("config.json", "model.safetensors"), "vit": ("config.json", "model.safetensors")}
#: families whose `pretrained` is one checkpoint file (the official BEiT-3 or OFA-ResNet .pth, or a
#: .safetensors)
PRETRAINED_FILE_FAMILIES = {"multiway", "resnet"}
#: where every rule writes (paths in rules/*.smk are relative to the working directory)
RESULTS = Path("results")
#: the search whose final Pareto front is measured again on every host profile (simqnas.hosts)
FRONT_SEARCH = {"space": "joint", "objective": "latency", "algorithm": "linas"}


def put_on_pythonpath(directory: str | Path) -> None:
    """Let every job of this process import the library from `directory`, also inside per-rule conda
    environments (`--sdm conda`), where it is not installed."""
    current = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), current]))


class ConfigError(ValueError):
    """A configuration mistake; the message is one line and starts with the offending key."""


@dataclass(frozen=True, order=True)
class SearchRun:
    """One search: (super-network, space, second objective, algorithm, seed) with its budget."""

    net: str
    space: str
    objective: str
    algorithm: str
    seed: int
    population: int
    evaluations: int
    host: str | None

    @property
    def iterations(self) -> int:
        return math.ceil(self.evaluations / self.population)

    def iteration_size(self, iteration: int) -> int:
        """The last iteration proposes only what is left of the budget."""
        return min(self.population, self.evaluations - iteration * self.population)

    @property
    def experiment(self) -> str:
        return f"{self.space}-{self.objective}"

    @property
    def directory(self) -> str:
        return f"results/{self.net}/search/{self.experiment}/{self.algorithm}/seed{self.seed}"


def _key_path(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def validate_schema(config: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> None:
    """Validate against the JSON schema (draft 2020-12); raise ConfigError for the first error found."""
    schema = yaml.safe_load(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(e.absolute_path))
    )
    if errors:
        # the deepest error of the first branch names the key most precisely
        error = jsonschema.exceptions.best_match(errors)
        message = error.message
        if error.validator == "additionalProperties":
            message = f"unknown key ({message})"
        raise ConfigError(f"config: {_key_path(error.absolute_path)}: {message}")


def load_space(spec: str | dict[str, Any], where: str, base: Path = Path()) -> SearchSpace:
    """A space given inline or as a path to a YAML file (relative paths from `base`)."""
    try:
        return space_from_spec(spec, where, base)
    except SpaceError as error:
        raise ConfigError(f"config: {error}") from None


def _check_text_rows(dataset: dict[str, Any], where: str, base: Path) -> None:
    """Read the text data (seconds at most, without torch): unreadable files, wrong columns and splits
    larger than the data fail here, not in the first job."""
    from simqnas.data.text import load_text_source

    spec = dict(dataset)
    if spec.get("path"):
        spec["path"] = str(base / spec["path"])
    try:
        rows = len(load_text_source(spec))
    except (OSError, ValueError) as error:
        raise ConfigError(f"config: {where}.path: {error}") from None
    sizes = dataset.get("splits")
    if sizes is None:
        raise ConfigError(f"config: {where}.splits: required (train, validation, calibration and test sizes)")
    # a split of "all" takes what the others leave, which must then be at least one row
    fixed = {name: size for name, size in sizes.items() if isinstance(size, int)}
    needed = sum(fixed.values()) + (len(sizes) - len(fixed))
    if needed > rows:
        requested = " + ".join(f"{name} {size}" for name, size in sizes.items())
        raise ConfigError(
            f"config: {where}.splits: {requested} = {needed} rows requested, "
            f"the {dataset['source']} data has {rows}"
        )


def _safetensors_metadata(path: Path, where: str) -> dict[str, str]:
    """The metadata of a safetensors file, reading only its header (which also covers truncation)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "numpy") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"config: {where}: {path}: not a readable safetensors file ({error})") from None


def _check_checkpoint(path: Path, family: str, where: str) -> None:
    """A trained super-network as `SuperNetwork.save` writes it, of the configured family."""
    if not path.is_file():
        raise ConfigError(f"config: {where}: {path} is not a file")
    saved = _safetensors_metadata(path, where).get("family")
    if saved != family:
        raise ConfigError(
            f"config: {where}: {path} holds a {saved!r} super-network, the config says family '{family}'"
            if saved
            else f"config: {where}: {path} is no saved super-network (no 'family' in its metadata)"
        )


def _check_pretrained(path: Path, family: str, where: str) -> None:
    """A pre-trained model folder with the files the family's loader reads, weights not truncated."""
    if family in PRETRAINED_FILE_FAMILIES:
        if not path.is_file():
            raise ConfigError(f"config: {where}: {path} is not a file")
        if path.suffix == ".safetensors":
            _safetensors_metadata(path, where)
        return
    if not path.is_dir():
        raise ConfigError(f"config: {where}: {path} is not a folder")
    for name in PRETRAINED_FILES.get(family, ()):
        if not (path / name).is_file():
            raise ConfigError(f"config: {where}: {path / name} not found")
        if name.endswith(".safetensors"):
            _safetensors_metadata(path / name, where)


def check_results_folder(results: Path = RESULTS) -> None:
    """Fail before any job if the results folder cannot be written (a file in the way, read-only mount,
    no permission): by probing, since permission bits do not tell for root or network file systems."""
    folder = results
    while not folder.exists():
        if folder.parent == folder:
            break
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{results}: cannot hold the results, {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as error:
        raise ConfigError(f"{results}: not writable ({error.strerror or error}: {folder})") from None


def check_config(config: dict[str, Any], base: Path = Path()) -> list[SearchRun]:
    """Validate everything that can be known before a job runs; return the search runs it defines."""
    validate_schema(config)
    datasets, supernets, hosts = config["datasets"], config["supernets"], config.get("hosts", {"local": {}})

    for name, dataset in datasets.items():
        where = f"datasets.{name}"
        sources = TEXT_SOURCES if dataset["kind"] == "text" else IMAGE_SOURCES
        if dataset["source"] not in sources:
            raise ConfigError(
                f"config: {where}.source: '{dataset['source']}' is not a {dataset['kind']} source "
                f"(choose from {sorted(sources)})"
            )
        if dataset["source"] in SOURCES_NEEDING_PATH:
            path = dataset.get("path")
            if not path:
                raise ConfigError(f"config: {where}.path: required for source '{dataset['source']}'")
            if not (base / path).exists():
                raise ConfigError(f"config: {where}.path: not found: {path}")
        tokenizer = dataset.get("tokenizer")
        if tokenizer and not (base / tokenizer).is_dir():
            raise ConfigError(f"config: {where}.tokenizer: folder not found: {tokenizer}")
        if dataset["kind"] == "text":
            _check_text_rows(dataset, where, base)

    for name, net in supernets.items():
        where = f"supernets.{name}"
        if net["dataset"] not in datasets:
            raise ConfigError(
                f"config: {where}.dataset: unknown dataset '{net['dataset']}' (defined: {sorted(datasets)})"
            )
        modality = FAMILY_MODALITY[net["family"]]
        if datasets[net["dataset"]]["kind"] != modality:
            raise ConfigError(
                f"config: {where}.dataset: family '{net['family']}' needs a {modality} dataset, "
                f"'{net['dataset']}' is {datasets[net['dataset']]['kind']}"
            )
        for key in net.get("architecture") or {}:
            if key not in ARCHITECTURE_KEYS[net["family"]]:
                raise ConfigError(
                    f"config: {where}.architecture.{key}: not a parameter of the {net['family']} family"
                )
        for key in ("pretrained", "checkpoint"):
            path = net.get(key)
            if path and not (base / path).exists():
                raise ConfigError(f"config: {where}.{key}: not found: {path}")
        if net.get("checkpoint"):
            _check_checkpoint(base / net["checkpoint"], net["family"], f"{where}.checkpoint")
        if net.get("pretrained"):
            _check_pretrained(base / net["pretrained"], net["family"], f"{where}.pretrained")
        load_space(net["space"], f"{where}.space", base)
        calibration = net.get("calibration", {}).get("samples", 64)
        available = datasets[net["dataset"]]["splits"]["calibration"]
        if calibration > available:
            raise ConfigError(
                f"config: {where}.calibration.samples: {calibration} is larger than the calibration split "
                f"of dataset '{net['dataset']}' ({available})"
            )

    for name, host in hosts.items():
        if host.get("feature") is None and name != "local":
            raise ConfigError(
                f"config: hosts.{name}.feature: a host other than 'local' needs the SLURM node feature "
                "that selects it"
            )

    runs: dict[tuple[str, str, str, str, int], SearchRun] = {}
    for name, experiment in config["experiments"].items():
        where = f"experiments.{name}"
        if experiment["supernet"] not in supernets:
            raise ConfigError(
                f"config: {where}.supernet: unknown super-network '{experiment['supernet']}' "
                f"(defined: {sorted(supernets)})"
            )
        if experiment["population"] > experiment["evaluations"]:
            raise ConfigError(
                f"config: {where}.population: {experiment['population']} is larger than the budget "
                f"evaluations={experiment['evaluations']}"
            )
        host = experiment.get("host")
        if "latency" in experiment["objectives"]:
            if host is None:
                raise ConfigError(f"config: {where}.host: the latency objective needs a host profile")
            if host not in hosts:
                raise ConfigError(f"config: {where}.host: unknown host '{host}' (defined: {sorted(hosts)})")
        for space in experiment.get("spaces", ["joint"]):
            for objective in experiment["objectives"]:
                for algorithm in experiment["algorithms"]:
                    for seed in experiment["seeds"]:
                        run = SearchRun(
                            net=experiment["supernet"],
                            space=space,
                            objective=objective,
                            algorithm=algorithm,
                            seed=seed,
                            population=experiment["population"],
                            evaluations=experiment["evaluations"],
                            host=host if objective == "latency" else None,
                        )
                        identity = (run.net, space, objective, algorithm, seed)
                        if identity in runs and runs[identity] != run:
                            raise ConfigError(
                                f"config: {where}: run {'/'.join(map(str, identity))} is defined twice with "
                                "different population, evaluations or host"
                            )
                        runs[identity] = run
    _check_references(supernets, config["experiments"])
    return sorted(runs.values())


def _check_references(supernets: dict[str, Any], experiments: dict[str, Any]) -> None:
    """A reference network is another, fixed network on the same data: its baselines are compared with this
    network's front, which only means something on the same validation set, and it is never searched (the
    rules summarize, plot and tabulate searched networks only)."""
    searched_by: dict[str, str] = {}
    for name, experiment in experiments.items():
        searched_by.setdefault(experiment["supernet"], name)
    for name, net in supernets.items():
        where = f"config: supernets.{name}.references"
        for reference in net.get("references") or []:
            if reference == name:
                raise ConfigError(
                    f"{where}: '{reference}' is the network itself (a reference is another network)"
                )
            if reference not in supernets:
                raise ConfigError(
                    f"{where}: '{reference}' is not a defined super-network (defined: {sorted(supernets)})"
                )
            dataset = supernets[reference]["dataset"]
            if dataset != net["dataset"]:
                raise ConfigError(
                    f"{where}: '{reference}' uses dataset '{dataset}', '{name}' uses '{net['dataset']}' "
                    "(a reference is compared on the same data)"
                )
            if reference in searched_by:
                raise ConfigError(
                    f"{where}: '{reference}' is searched by experiments.{searched_by[reference]} "
                    "(a reference is a fixed network in no experiment)"
                )
