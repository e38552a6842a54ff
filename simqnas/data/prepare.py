"""The data rule: a configured dataset -> seeded, stratified train / validation / calibration splits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from simqnas.data.text import encode_split, load_glue_sst2, load_sentence_polarity, stratified_splits

if TYPE_CHECKING:  # torch loads lazily: the config check at workflow start reads data files without it
    import torch

SPLITS = ("train", "validation", "calibration")


def load_text_source(spec: Mapping[str, Any]) -> pd.DataFrame:
    if spec["source"] == "sentence_polarity":
        return load_sentence_polarity(spec.get("path"))
    if spec["source"] == "glue_sst2":
        return load_glue_sst2(spec["path"])
    raise ValueError(f"datasets: source '{spec['source']}' is not a text source")


Splits = dict[str, dict[str, "torch.Tensor"]]


def prepare_text_dataset(spec: Mapping[str, Any]) -> tuple[Splits, dict[str, Any]]:
    """Tokenized splits of a text dataset and a summary (sizes, label balance, settings) for the log."""
    frame = load_text_source(spec)
    sizes = {name: spec["splits"][name] for name in SPLITS}
    splits = stratified_splits(frame, sizes, spec["seed"])
    tensors = {
        name: encode_split(split, spec.get("tokenizer"), spec["max_length"]) for name, split in splits.items()
    }
    summary = {
        "source": spec["source"],
        "rows": len(frame),
        "seed": spec["seed"],
        "max_length": spec["max_length"],
        "splits": {
            name: {"rows": len(split), "positive_fraction": float(split["label"].mean())}
            for name, split in splits.items()
        },
        "truncated_fraction": {
            name: float((t["attention_mask"][:, -1] == 1).float().mean()) for name, t in tensors.items()
        },
    }
    return tensors, summary


def calibration_subset(split: Mapping[str, torch.Tensor], samples: int, seed: int) -> dict[str, torch.Tensor]:
    """A fixed, seeded subset of the calibration split: every quantization of a super-network sees it."""
    import torch

    rows = len(split["labels"])
    if samples > rows:
        raise ValueError(f"calibration.samples: {samples} is larger than the calibration split ({rows} rows)")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(rows, generator=generator)[:samples].sort().values
    return {name: tensor[chosen] for name, tensor in split.items()}
