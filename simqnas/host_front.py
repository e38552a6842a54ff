"""The final LINAS latency front across host profiles: which networks it holds, and how their normalized
latencies and ranking change when every configured host measures them.

The front is taken from the LINAS runs of the joint accuracy + latency search, pooled over seeds (the union
of their evaluations, one row per distinct network), on normalized latency (each run's latency divided by
the all-INT8 baseline of the host it searched on). Every host then measures the same networks, and each
host's latency is normalized by the all-INT8 baseline measured on that host.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from simqnas.pareto import pareto_front_mask
from simqnas.summary import prefer_same_rounds

log = logging.getLogger(__name__)

FRONT_COLUMNS = [
    "member",
    "genome",
    "quality_key",
    "accuracy",
    "size_bytes",
    "search_host",
    "search_latency_ms",
    "search_normalized_latency",
    "seed",
    "evaluation",
]

#: one row per (host, front member) of the host comparison
HOST_COLUMNS = [
    "host",
    "member",
    "genome",
    "accuracy",
    "size_bytes",
    "latency_ms",
    "latency_std_ms",
    "latency_p25_ms",
    "latency_p75_ms",
    "latency_stable",
    "baseline_int8_ms",
    "normalized_latency",
    "rank",
    "on_front",
    "search_host",
    "search_normalized_latency",
    "cpu_model",
    "node",
    "node_features",
]


def _matching(evaluations: pd.DataFrame, search: Mapping[str, str]) -> pd.DataFrame:
    selected = evaluations
    for column, value in search.items():
        selected = selected[selected[column] == value]
    return selected


def latency_front(
    evaluations: pd.DataFrame, search: Mapping[str, str], unstable: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The Pareto front (accuracy up, normalized latency down) of the runs matching `search` (the LINAS joint
    accuracy + latency runs: simqnas.config.FRONT_SEARCH), seeds pooled, one row per distinct network,
    `member` numbered from the fastest.

    Empty, with a warning, when every evaluation of those runs has a latency the stability gate left
    unstable (`unstable`: the evaluations the summary set aside): there is no front to measure again,
    which the host table and figure then say, rather than a failed workflow.
    """
    selected = _matching(evaluations, search)
    if selected.empty:
        if unstable is not None and not _matching(unstable, search).empty:
            log.warning(
                "latency front: every latency of the LINAS joint accuracy + latency search stayed unstable "
                "(%d evaluations): no front to measure on the hosts",
                len(_matching(unstable, search)),
            )
            return pd.DataFrame(columns=FRONT_COLUMNS)
        raise ValueError("latency front: no evaluations of a LINAS joint accuracy + latency search")
    values = selected[["accuracy", "normalized_latency"]].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise ValueError("latency front: evaluations without accuracy or normalized latency")
    # a network found by several seeds counts once (its quality key names the network and policy)
    distinct = selected.drop_duplicates("quality_key")
    mask = pareto_front_mask(
        distinct[["accuracy", "normalized_latency"]].to_numpy(dtype=float), (True, False)
    )
    front = distinct[mask].sort_values(["normalized_latency", "accuracy"], ascending=[True, False])
    front = front.rename(
        columns={
            "host": "search_host",
            "latency_ms": "search_latency_ms",
            "normalized_latency": "search_normalized_latency",
        }
    )
    front.insert(0, "member", range(len(front)))
    return front[FRONT_COLUMNS].reset_index(drop=True)


def host_comparison(
    front: pd.DataFrame, latencies: Mapping[str, pd.DataFrame], int8_latency_ms: Mapping[str, float]
) -> pd.DataFrame:
    """One row per (host, front member): latency on that host, normalized by that host's all-INT8 baseline,
    the member's latency rank on the host (1 = fastest), and whether it is still Pareto-optimal there.

    `latencies[host]` is a re-measurement table (`candidate` = member, latency_ms, ...); every host must
    have measured every member.
    """
    rows = []
    for host, table in latencies.items():
        if host not in int8_latency_ms:
            raise ValueError(f"host comparison: no all-INT8 baseline latency for host {host}")
        measured = table.set_index("candidate").drop(columns="host", errors="ignore")
        missing = sorted(set(front["member"]) - set(measured.index))
        if missing:
            raise ValueError(f"host comparison: host {host} did not measure front members {missing}")
        on_host = front.join(measured, on="member")
        on_host.insert(0, "host", host)
        on_host["baseline_int8_ms"] = int8_latency_ms[host]
        on_host["normalized_latency"] = prefer_same_rounds(
            on_host, on_host["latency_ms"] / int8_latency_ms[host]
        )
        on_host["rank"] = on_host["normalized_latency"].rank(method="min").astype(int)
        on_host["on_front"] = pareto_front_mask(
            on_host[["accuracy", "normalized_latency"]].to_numpy(dtype=float), (True, False)
        )
        rows.append(on_host)
    if not rows:
        return pd.DataFrame(columns=HOST_COLUMNS)
    return pd.concat(rows, ignore_index=True).reindex(columns=HOST_COLUMNS)
