"""Super-network families behind one interface (`base.SuperNetwork`), and loading a saved one by family."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from simqnas.space import SearchSpace
from simqnas.supernets.base import Arch, SuperNetwork
from simqnas.supernets.bert import BertSuperNetwork
from simqnas.supernets.multiway import MultiwaySuperNetwork
from simqnas.supernets.resnet import ResNetSuperNetwork
from simqnas.supernets.vit import VitSuperNetwork

#: family name (as written by `SuperNetwork.save`) -> class
FAMILIES: dict[str, type[SuperNetwork]] = {
    family.family: family
    for family in (BertSuperNetwork, VitSuperNetwork, MultiwaySuperNetwork, ResNetSuperNetwork)
}


def load_supernet(path: str | Path) -> SuperNetwork:
    """Rebuild a super-network written by `SuperNetwork.save` (family and constructor arguments from the
    safetensors metadata, then the weights)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: super-network file not found")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    family = meta.get("family")
    if family not in FAMILIES:
        raise ValueError(
            f"{path}: unknown super-network family {family!r} (known: {', '.join(sorted(FAMILIES))})"
        )
    try:
        network = FAMILIES[family](**json.loads(meta["hyperparameters"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{path}: invalid hyperparameters metadata for family {family!r} ({error})"
        ) from None
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise ValueError(f"{path}: weights do not fit a {family} super-network ({first})") from None
    return network


def sandwich_archs(space: SearchSpace) -> tuple[Arch, Arch]:
    """(largest, smallest) architecture of the space's elastic parameters."""
    largest = {p.name: [max(p.choices)] * p.count for p in space.elastic}
    smallest = {p.name: [min(p.choices)] * p.count for p in space.elastic}
    return largest, smallest


def build_supernet(spec: Mapping[str, Any], dataset: Mapping[str, Any], seed: int) -> SuperNetwork:
    """A fresh super-network for the workflow config entry `supernets.<name>` (`spec`) and its dataset.

    Weights a pre-trained checkpoint lacks (a new classifier head) are drawn from `seed`, so the same config
    builds the same network: training resumes from its checkpoints and reruns give the same numbers.
    """
    family = spec["family"]
    if family not in FAMILIES:
        raise ValueError(
            f"family: unknown super-network family {family!r} (known: {', '.join(sorted(FAMILIES))})"
        )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return FAMILIES[family].from_config(spec, dataset)


def resolve_space(space: SearchSpace, supernet: SuperNetwork) -> SearchSpace:
    """`space` checked against `supernet`, its quantization layers named by the network's module names.

    Quantization layers given as a count take the network's names in gene order; given as names, they must
    be exactly the network's. The space's largest and smallest architectures must be runnable, and so must
    every choice of every elastic parameter (the others at their largest): a value the network cannot build
    is found here, not when a search first proposes it.
    """
    layers = supernet.quantizable_layers()
    if space.quantization is not None:
        given = space.quantization.layers
        if given == tuple(f"q{i}" for i in range(len(given))):
            if len(given) != len(layers):
                raise ValueError(
                    f"space.quantization.layers: {len(given)} layers, the {supernet.family} super-network "
                    f"has {len(layers)} quantizable layers"
                )
            space = space.with_layer_names(layers)
        elif list(given) != layers:
            unknown = [name for name in given if name not in layers]
            detail = f"unknown layer {unknown[0]!r}" if unknown else "not the network's layers in gene order"
            raise ValueError(f"space.quantization.layers: {detail} (the network has {len(layers)} layers)")
    largest, smallest = sandwich_archs(space)
    each_choice = [{**largest, p.name: [c] * p.count} for p in space.elastic for c in p.choices]
    for arch in (largest, smallest, *each_choice):
        try:
            supernet.set_active(arch)
        except ValueError as error:
            raise ValueError(
                f"space.elastic: the {supernet.family} super-network cannot run it ({error})"
            ) from None
    supernet.set_active(None)
    return space
