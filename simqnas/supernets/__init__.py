"""Super-network families behind one interface (`base.SuperNetwork`), and loading a saved one by family."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open

from simqnas.supernets.base import SuperNetwork
from simqnas.supernets.bert import BertSuperNetwork

#: family name (as written by `SuperNetwork.save`) -> class
FAMILIES: dict[str, type[SuperNetwork]] = {BertSuperNetwork.family: BertSuperNetwork}


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
