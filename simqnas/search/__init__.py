"""Search algorithms behind one interface, looked up by the name the config uses."""

from __future__ import annotations

from typing import Any

from simqnas.search.base import History, Objective, SearchAlgorithm
from simqnas.search.linas import LINAS
from simqnas.search.nsga2 import NSGA2Search
from simqnas.search.random import RandomSearch
from simqnas.search.tpe import TPESearch

ALGORITHMS: dict[str, type[SearchAlgorithm]] = {
    cls.name: cls for cls in (LINAS, NSGA2Search, RandomSearch, TPESearch)
}

__all__ = ["ALGORITHMS", "History", "Objective", "SearchAlgorithm", "get_algorithm"]


def get_algorithm(name: str, **params: Any) -> SearchAlgorithm:
    """The algorithm called `name`, configured by `params` (e.g. linas: inner_evaluations=2000).

    Unknown names and parameters raise ValueError naming what is valid.
    """
    if name not in ALGORITHMS:
        raise ValueError(f"unknown search algorithm {name!r}; valid: {', '.join(sorted(ALGORITHMS))}")
    try:
        return ALGORITHMS[name](**params)
    except TypeError as error:
        raise ValueError(f"search algorithm {name!r}: bad parameters {sorted(params)}: {error}") from error
