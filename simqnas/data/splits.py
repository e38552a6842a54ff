"""Seeded, stratified, disjoint splits of labelled rows, shared by every modality."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: a split size meaning "every row the fixed-size splits leave"
REST = "all"


def _quotas(n: int, proportions: np.ndarray, available: np.ndarray) -> np.ndarray:
    """Split n <= available.sum() rows over classes in proportion, never more than a class has left."""
    exact = n * proportions
    quotas = np.minimum(np.floor(exact).astype(np.int64), available)
    by_remainder = np.argsort(-(exact - np.floor(exact)), kind="stable")
    while quotas.sum() < n:
        for c in by_remainder:
            if quotas.sum() < n and quotas[c] < available[c]:
                quotas[c] += 1
    return quotas


def stratified_splits(
    frame: pd.DataFrame, sizes: Mapping[str, int | str | None], seed: int
) -> dict[str, pd.DataFrame]:
    """Disjoint, seeded splits keeping the class proportions of `frame["label"]`.

    `sizes` maps split name -> row count, or "all"/None for every row the others leave (at most one such
    split). Rows keep their index in `frame`; each split is shuffled.
    """
    rest = [name for name, size in sizes.items() if size is None or size == REST]
    if len(rest) > 1:
        raise ValueError(f"splits: only one split can take the rest, got {', '.join(rest)}")
    total = len(frame)
    left = total
    for name, size in sizes.items():
        if name in rest:
            continue
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise ValueError(f"splits: {name}: {size!r} is not a positive row count or '{REST}'")
        if size > left:
            raise ValueError(f"splits: {name}: {size} rows requested but only {left} of {total} are left")
        left -= int(size)

    rng = np.random.default_rng(seed)
    labels = frame["label"].to_numpy()
    classes, counts = np.unique(labels, return_counts=True)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in classes]
    proportions = counts / total
    out = {}
    # fixed sizes first, so the rest is what they leave whatever the order of `sizes`
    for name in [n for n in sizes if n not in rest] + rest:
        available = np.array([len(p) for p in pools])
        n = int(available.sum()) if name in rest else int(sizes[name])
        quotas = _quotas(n, proportions, available)
        rows = np.concatenate([pool[:q] for pool, q in zip(pools, quotas, strict=True)]).astype(np.int64)
        pools = [pool[q:] for pool, q in zip(pools, quotas, strict=True)]
        out[name] = frame.iloc[rng.permutation(rows)]
    return {name: out[name] for name in sizes}
