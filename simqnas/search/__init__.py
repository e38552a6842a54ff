"""Search algorithms behind one interface, looked up by the name the config uses."""

from __future__ import annotations

from functools import cache
from typing import Any

from simqnas.search.base import History, Objective, SearchAlgorithm

__all__ = ["ALGORITHMS", "History", "Objective", "SearchAlgorithm", "get_algorithm"]


@cache
def _algorithms() -> dict[str, type[SearchAlgorithm]]:
    # imported on first use, not with the package: evaluation jobs import `simqnas.search.base` (through the
    # history's types) and would otherwise pay for the algorithms' own imports (pymoo, optuna): 0.2 s a job
    from simqnas.search.linas import LINAS
    from simqnas.search.nsga2 import NSGA2Search
    from simqnas.search.random import RandomSearch
    from simqnas.search.tpe import TPESearch

    return {cls.name: cls for cls in (LINAS, NSGA2Search, RandomSearch, TPESearch)}


def __getattr__(name: str) -> Any:
    if name == "ALGORITHMS":
        return _algorithms()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_algorithm(name: str, **params: Any) -> SearchAlgorithm:
    """The algorithm called `name`, configured by `params` (e.g. linas: inner_evaluations=2000).

    Unknown names and parameters raise ValueError naming what is valid.
    """
    algorithms = _algorithms()
    if name not in algorithms:
        raise ValueError(f"unknown search algorithm {name!r}; valid: {', '.join(sorted(algorithms))}")
    try:
        return algorithms[name](**params)
    except TypeError as error:
        raise ValueError(f"search algorithm {name!r}: bad parameters {sorted(params)}: {error}") from error
