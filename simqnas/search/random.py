"""Random search, and the seeded sampling of unseen genomes every algorithm starts from and tops up with."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from simqnas.search.base import History, SearchAlgorithm, distinct_networks

if TYPE_CHECKING:
    from simqnas.space import SearchSpace

# Spaces up to this many genomes are enumerated, so sampling stays exact even when the history covers
# almost all of them; larger spaces are sampled by rejection (a history never covers a noticeable part).
ENUMERATION_LIMIT = 1 << 16
_MAX_REJECTION_ROUNDS = 1000


def iteration_rng(seed: int, iteration: int) -> np.random.Generator:
    """The generator of one (seed, iteration): independent streams per iteration, same stream on rerun."""
    return np.random.default_rng(np.random.SeedSequence([seed, iteration]))


def iteration_seed(seed: int, iteration: int) -> int:
    """An integer seed for libraries (pymoo, sklearn) derived like `iteration_rng`."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


def space_size(space: SearchSpace) -> int:
    return math.prod(int(c) for c in space.cardinalities)


def all_genomes(space: SearchSpace) -> np.ndarray:
    """Every genome of a small space, (space_size, n_genes) int64, in lexicographic order."""
    dims = tuple(int(c) for c in space.cardinalities)
    index = np.arange(space_size(space))
    return np.stack(np.unravel_index(index, dims), axis=1).astype(np.int64).reshape(-1, space.n_genes)


def sample_unseen(
    space: SearchSpace, n: int, rng: np.random.Generator, seen: set[tuple[int, ...]]
) -> np.ndarray:
    """Draw up to n distinct networks not in `seen` (network keys), as canonical genomes, in draw order.

    Genes are drawn uniformly, as in every search's initial population; genomes that differ only in genes
    a shallower depth drops count once. Returns fewer than n only when fewer than n networks of the space
    are unseen (then all of them).
    """
    if space_size(space) <= ENUMERATION_LIMIT:
        unseen = distinct_networks(space, all_genomes(space), seen)
        return unseen[rng.choice(len(unseen), size=min(n, len(unseen)), replace=False)]

    taken = set(seen)
    rows: list[np.ndarray] = []
    for _ in range(_MAX_REJECTION_ROUNDS):
        for genome in space.canonical(space.sample(2 * (n - len(rows)) + 8, rng)):
            key = tuple(int(g) for g in genome)
            if key not in taken and len(rows) < n:
                taken.add(key)
                rows.append(genome)
        if len(rows) == n:
            break
    else:
        raise RuntimeError(f"could not draw {n} unseen genomes in {_MAX_REJECTION_ROUNDS} rounds")
    return np.array(rows, dtype=np.int64).reshape(-1, space.n_genes)


class RandomSearch(SearchAlgorithm):
    """Uniform random genomes, distinct and unseen, from the (seed, iteration) stream.

    Its iteration 0 is, by construction, every algorithm's iteration 0: NSGA-II and LINAS call it there, so
    for one seed and population size all three evaluate the same initial population, and the
    content-addressed evaluation cache computes it once.
    """

    name = "random"

    def __init__(self) -> None:
        super().__init__()

    def propose(self, space: SearchSpace, history: History, n: int, seed: int, iteration: int) -> np.ndarray:
        return sample_unseen(space, n, iteration_rng(seed, iteration), history.seen(space))
