"""Workflow configuration: schema validation with one-line errors, semantic checks, and the search runs.

The Snakefile calls `check_config` before building the DAG, so a typo fails in a second with a message that
names the offending key, never after hours of training.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from simqnas.space import SearchSpace, SpaceError, space_from_spec
from simqnas.yamlfile import YamlError, check_expansion, load_yaml, short_repr

if TYPE_CHECKING:
    from simqnas.supernets.base import SuperNetwork

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"

TEXT_SOURCES = {"sentence_polarity", "glue_sst2"}
IMAGE_SOURCES = {"fashion_mnist", "image_folder"}
SOURCES_NEEDING_PATH = {"glue_sst2", "image_folder"}
#: where every rule writes (paths in rules/*.smk are relative to the working directory)
RESULTS = Path("results")
#: the search whose final Pareto front is measured again on every host profile (simqnas.host_front)
FRONT_SEARCH = {"space": "joint", "objective": "latency", "algorithm": "linas"}
#: search iterations of one run, and of all runs together: Snakemake plans every iteration's jobs when it
#: starts, so a budget beyond these would keep it planning for hours (the paper's config: 10 per run, 450)
MAX_RUN_ITERATIONS = 1_000
MAX_ITERATIONS = 20_000
#: an integer anywhere in a config beyond 64 bits is a typo (and beyond what numpy and torch accept)
MAX_INTEGER_BITS = 64
#: hyperparameters of a saved network that count layers or blocks: each needs at least one tensor
COUNT_HYPERPARAMETERS = {"num_layers", "base_depths", "depth_choices"}


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

    @property
    def label(self) -> str:
        """The run among the runs of its network and experiment (e.g. the runs an evaluation shard pools)."""
        return f"{self.algorithm}/seed{self.seed}"


def _key_path(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def check_config_files(paths: Sequence[str | Path]) -> None:
    """Read the config files strictly before Snakemake's loader does (or after it, for `--configfile`):
    a key given twice, a file that is not UTF-8, an alias bomb or invalid YAML is one line naming it."""
    for path in paths:
        try:
            data = load_yaml(path)
        except YamlError as error:
            raise ConfigError(f"config: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config: {path}: must be a mapping of keys (threads, datasets, ...)")


def _check_values(config: Any) -> None:
    """Bounded size first (a shared object counts at each place it appears), then every number: NaN and
    infinity are refused wherever a number is read, integers beyond 64 bits as typos."""
    try:
        check_expansion(config, "config")
    except YamlError as error:
        raise ConfigError(str(error)) from None
    visited: set[int] = set()
    stack: list[tuple[Any, tuple[Any, ...]]] = [(config, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config: {_key_path(path)}: {value} is not a finite number")
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INTEGER_BITS:
            raise ConfigError(f"config: {_key_path(path)}: {short_repr(value)} is beyond 64 bits")
        if isinstance(value, dict | list | tuple) and id(value) not in visited:
            visited.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((child, (*path, key)) for key, child in items)


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
        if len(message) > 300:  # the message quotes the value, which may be long
            message = f"{message[:150]} ... {message[-100:]}"
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


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings or log lines while networks are built for the check (the check's output is one line)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _weight_shapes(path: Path, where: str) -> dict[str, tuple[int, ...]]:
    """Every tensor of a weights file (safetensors, or a torch file opened with `weights_only=True`: a
    truncated, zero-filled or pickled-code file is refused) with its shape; a tensor holding NaN or infinity
    is refused, since every number computed from it would be meaningless."""
    import torch
    from safetensors import SafetensorError, safe_open

    from simqnas.supernets.base import read_checkpoint

    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), "pt") as f:
                tensors = ((key, f.get_tensor(key)) for key in f.keys())  # noqa: SIM118 (not a dict)
                shapes = {key: _finite(tensor, key, path, where) for key, tensor in tensors}
        except (SafetensorError, OSError) as error:
            raise ConfigError(f"config: {where}: {path}: not a readable safetensors file ({error})") from None
        return shapes
    try:
        with _quiet():
            state = read_checkpoint(path)
    except (OSError, ValueError) as error:
        if "weights-only torch file" not in str(error):
            raise ConfigError(f"config: {where}: {str(error).splitlines()[0]}") from None
        # torch's own message suggests weights_only=False, i.e. running whatever code the file holds
        raise ConfigError(
            f"config: {where}: {path}: not a readable weights-only torch file (truncated, damaged, or "
            "holding objects other than tensors, which are never unpickled)"
        ) from None
    return {
        key: _finite(tensor, key, path, where) for key, tensor in state.items() if torch.is_tensor(tensor)
    }


def _finite(tensor: Any, key: str, path: Path, where: str) -> tuple[int, ...]:
    import torch

    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise ConfigError(f"config: {where}: {path}: tensor {key} holds NaN or infinite values")
    return tuple(tensor.shape)


def _saved_network(path: Path, family: str, where: str) -> SuperNetwork:
    """A trained super-network as `SuperNetwork.save` writes it, of the configured family: its weights read
    and finite, its hyperparameters bounded by the weights the file holds (so that an impossible size is
    refused before anything is allocated), then built without memory (on the meta device) and compared with
    the weights' shapes. Returns that memory-less network, for the space checks."""
    import torch

    from simqnas.supernets import FAMILIES

    if not path.is_file():
        raise ConfigError(f"config: {where}: {path} is not a file")
    metadata = _safetensors_metadata(path, where)
    saved = metadata.get("family")
    if saved != family:
        raise ConfigError(
            f"config: {where}: {path} holds a {saved!r} super-network, the config says family '{family}'"
            if saved
            else f"config: {where}: {path} is no saved super-network (no 'family' in its metadata)"
        )
    shapes = _weight_shapes(path, where)
    try:
        hyperparameters = yaml.safe_load(metadata["hyperparameters"])  # JSON, which YAML reads
        if not isinstance(hyperparameters, dict):
            raise ValueError("not a mapping")
    except (KeyError, ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"config: {where}: {path}: unreadable hyperparameters metadata ({error})") from None
    elements = sum(math.prod(shape) for shape in shapes.values())
    for key, value in hyperparameters.items():
        for number in value if isinstance(value, list) else [value]:
            if isinstance(number, bool) or not isinstance(number, int):
                continue
            bound, what = (len(shapes), "tensors") if key in COUNT_HYPERPARAMETERS else (elements, "weights")
            if number > bound:
                raise ConfigError(
                    f"config: {where}: {path}: hyperparameter {key}={short_repr(number)} would build a "
                    f"network larger than the {bound} {what} the file holds"
                )
    try:
        with torch.device("meta"), _quiet():
            network = FAMILIES[family](**hyperparameters)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"config: {where}: {path}: invalid hyperparameters ({error})") from None
    for key, tensor in network.state_dict().items():
        if shapes.get(key) != tuple(tensor.shape):
            raise ConfigError(
                f"config: {where}: {path}: the weights do not fit its hyperparameters ({key}: "
                f"{shapes.get(key, 'missing')}, expected {tuple(tensor.shape)})"
            )
    return network


def _family(name: str) -> type[SuperNetwork]:
    """The class of a super-network family (the schema has checked the name): what it declares about itself
    (`modality`, `architecture_keys`, `pretrained_files`) is what the checks here read."""
    from simqnas.supernets import FAMILIES

    return FAMILIES[name]


def _check_family(net: dict[str, Any], dataset: dict[str, Any], where: str, base: Path) -> None:
    """What the network's family reads: its kind of dataset, its `architecture` keys, its pre-trained
    weights' files."""
    family = _family(net["family"])
    if dataset["kind"] != family.modality:
        raise ConfigError(
            f"config: {where}.dataset: family '{net['family']}' needs a {family.modality} dataset, "
            f"'{net['dataset']}' is {dataset['kind']}"
        )
    for key in net.get("architecture") or {}:
        if key not in family.architecture_keys:
            raise ConfigError(
                f"config: {where}.architecture.{key}: not a parameter of the {net['family']} family"
            )
    if net.get("pretrained"):
        _check_pretrained(base / net["pretrained"], family, f"{where}.pretrained")


def _check_pretrained(path: Path, family: type[SuperNetwork], where: str) -> None:
    """Pre-trained weights (a folder with the files the family's loader reads, or one checkpoint file)
    readable, not truncated, finite."""
    if family.pretrained_files is None:
        if not path.is_file():
            raise ConfigError(f"config: {where}: {path} is not a file")
        _weight_shapes(path, where)
        return
    if not path.is_dir():
        raise ConfigError(f"config: {where}: {path} is not a folder")
    for name in family.pretrained_files:
        if not (path / name).is_file():
            raise ConfigError(f"config: {where}: {path / name} not found")
        if name.endswith(".safetensors"):
            _safetensors_metadata(path / name, where)
            _weight_shapes(path / name, where)


def _built_network(net: dict[str, Any], dataset: dict[str, Any], where: str, base: Path) -> SuperNetwork:
    """The network a job would build from the config, built without memory (on the meta device)."""
    import torch

    from simqnas.supernets import build_supernet

    spec = dict(net)
    if spec.get("pretrained"):
        spec["pretrained"] = str(base / spec["pretrained"])
    try:
        with torch.device("meta"), _quiet():
            return build_supernet(spec, dataset, seed=0)
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            f"config: {where}: cannot build the {net['family']} super-network ({str(error).splitlines()[0]})"
        ) from None


def _check_network(
    network: SuperNetwork, space: SearchSpace, net: dict[str, Any], name: str, config: Any
) -> None:
    """What the first job would find: every choice of every elastic parameter runnable, the quantization
    layers those of the network, the sequence length within the position embeddings."""
    from simqnas.supernets import resolve_space

    try:
        with _quiet():
            resolve_space(space, network)
    except ValueError as error:
        raise ConfigError(f"config: supernets.{name}.space: {error}") from None
    positions = network.hyperparameters().get("max_position")
    dataset = config["datasets"][net["dataset"]]
    length = dataset.get("max_length", 64)
    if positions is not None and length > positions:
        raise ConfigError(
            f"config: datasets.{net['dataset']}.max_length: {length} is beyond the {positions} position "
            f"embeddings of supernets.{name}"
        )


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


def _check_execution(net: dict[str, Any], where: str, devices: bool) -> None:
    """The training sections' processes, device and precision (simqnas.execution); with `devices`, also that
    this machine has what they ask for (a local run: its jobs run here)."""
    from simqnas.execution import ExecutionError, resolve_device, split_execution

    for section in ("teacher", "training"):
        if not net.get(section):
            continue
        try:
            _, execution = split_execution(net[section], f"{where}.{section}")
            if devices:
                resolve_device(execution, f"{where}.{section}")
        except ExecutionError as error:
            raise ConfigError(f"config: {error}") from None


def _check_recipe(net: dict[str, Any], dataset: dict[str, Any], where: str) -> None:
    """Mixup and CutMix mix images, and the super-network's distillation targets are the teacher's logits of
    the unmixed images: both refused where they cannot apply, rather than skipped."""
    for section in ("teacher", "training"):
        settings = net.get(section) or {}
        mixing = [key for key in ("mixup", "cutmix") if settings.get(key, 0) > 0]
        if not mixing:
            continue
        if dataset["kind"] != "image":
            raise ConfigError(
                f"config: {where}.{section}.{mixing[0]}: mixes images, and dataset '{net['dataset']}' is text"
            )
        if section == "training" and net.get("teacher"):
            raise ConfigError(
                f"config: {where}.training.{mixing[0]}: not with a teacher (its distillation targets are of "
                "the unmixed images); mix the teacher's fine-tuning instead, or train without a teacher"
            )


def check_config(
    config: dict[str, Any], base: Path = Path(), networks: bool = True, devices: bool = False
) -> list[SearchRun]:
    """Validate everything that can be known before a job runs; return the search runs it defines.

    `networks`: also check every super-network against its family (dataset kind, architecture keys,
    pre-trained files and checkpoint, as the family class declares them) and build it without memory (meta
    device; a second or two, importing torch) to check every choice of its space, as its first job would.
    Jobs skip this: the workflow's main process has done it before any job started.
    `devices`: also check that this machine gives the training sections' `device` (a GPU for `cuda`), for a
    run whose jobs run here; on a cluster each training job checks its own node when it starts.
    """
    _check_values(config)
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
        if dataset.get("stream") and dataset["source"] != "image_folder":
            raise ConfigError(
                f"config: {where}.stream: only an image_folder's training split can be streamed (read file "
                f"by file as training goes), not a {dataset['source']} one"
            )

    spaces: dict[str, tuple[SearchSpace, SuperNetwork | None]] = {}
    for name, net in supernets.items():
        where = f"supernets.{name}"
        if net["dataset"] not in datasets:
            raise ConfigError(
                f"config: {where}.dataset: unknown dataset '{net['dataset']}' (defined: {sorted(datasets)})"
            )
        for key in ("pretrained", "checkpoint"):
            path = net.get(key)
            if path and not (base / path).exists():
                raise ConfigError(f"config: {where}.{key}: not found: {path}")
        saved = None
        if networks:
            _check_family(net, datasets[net["dataset"]], where, base)
            if net.get("checkpoint"):
                saved = _saved_network(base / net["checkpoint"], net["family"], f"{where}.checkpoint")
        space = load_space(net["space"], f"{where}.space", base)
        _check_execution(net, where, devices)
        _check_recipe(net, datasets[net["dataset"]], where)
        calibration = net.get("calibration", {}).get("samples", 64)
        available = datasets[net["dataset"]]["splits"]["calibration"]
        if calibration > available:
            raise ConfigError(
                f"config: {where}.calibration.samples: {calibration} is larger than the calibration split "
                f"of dataset '{net['dataset']}' ({available})"
            )
        spaces[name] = (space, saved)

    for name, host in hosts.items():
        if host.get("feature") is None and name != "local":
            raise ConfigError(
                f"config: hosts.{name}.feature: a host other than 'local' needs the SLURM node feature "
                "that selects it"
            )

    runs: dict[tuple[str, str, str, str, int], SearchRun] = {}
    planned = 0
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
        iterations = math.ceil(experiment["evaluations"] / experiment["population"])
        if iterations > MAX_RUN_ITERATIONS:
            raise ConfigError(
                f"config: {where}.evaluations: {experiment['evaluations']} evaluations in populations of "
                f"{experiment['population']} make {iterations} iterations per run, at most "
                f"{MAX_RUN_ITERATIONS} (Snakemake plans every iteration when it starts)"
            )
        kinds = [experiment.get(key, ["joint"]) for key in ("spaces", "objectives", "algorithms", "seeds")]
        planned += iterations * math.prod(map(len, kinds))
        if planned > MAX_ITERATIONS:
            raise ConfigError(
                f"config: {where}: the experiments make {planned} search iterations or more, at most "
                f"{MAX_ITERATIONS} in all (Snakemake plans every iteration when it starts: fewer seeds, "
                "algorithms or evaluations, or larger populations)"
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
    if networks:  # last: the other checks need no PyTorch and answer faster
        for name, (space, saved) in spaces.items():
            net = supernets[name]
            network = saved or _built_network(net, datasets[net["dataset"]], f"supernets.{name}", base)
            _check_network(network, space, net, name, config)
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
