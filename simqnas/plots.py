"""The paper's figures as pure functions from tidy CSV tables to PNG + PDF files (seaborn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are files; no display on clusters

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from simqnas.io import atomic_path
from simqnas.pareto import pareto_front_mask
from simqnas.statistics import t_interval
from simqnas.summary import (
    COST_COLUMN,
    final_hypervolumes,
    own_baselines,
    reference_baselines,
    reference_names,
)

COST_LABEL = {"size": "model size (MB)", "latency": "normalized latency (vs all-INT8 baseline)"}
BASELINE_STYLE = {
    "int8": {"marker": "*", "s": 220, "color": "tab:red", "label": "all-INT8 super-network (baseline)"},
    "fp32": {"marker": "P", "s": 140, "color": "black", "label": "FP32 super-network"},
}
#: fixed reference networks (`references:`): a colour each, in config order; the marker says the precision
REFERENCE_COLOURS = ("tab:purple", "tab:brown", "tab:olive", "tab:cyan", "tab:pink", "tab:gray")
REFERENCE_MARKER = {"int8": "D", "fp32": "X"}
#: the spread drawn around a front point's latency: the interquartile range of its timed runs
LATENCY_SPREAD = ("latency_p25_ms", "latency_p75_ms")


def save(figure: plt.Figure, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:
        with atomic_path(path) as tmp:
            # the temporary name has no .png/.pdf suffix to infer the format from
            figure.savefig(tmp, format=path.suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(figure)
    return paths


def front_of(points: pd.DataFrame, cost: str) -> pd.DataFrame:
    mask = pareto_front_mask(points[["accuracy", cost]].to_numpy(dtype=float), (True, False))
    return points[mask].sort_values(cost)


def latency_spread(points: pd.DataFrame) -> np.ndarray | None:
    """Horizontal error bars (2, n) of points on the normalized-latency axis: the interquartile range of
    each point's timed runs (`latency_p25_ms`..`latency_p75_ms`), scaled like the point (divided by the same
    all-INT8 baseline); None for a table without quartiles (written before they were recorded)."""
    if not {*LATENCY_SPREAD, "latency_ms", "normalized_latency"} <= set(points.columns):
        return None
    scale = points["normalized_latency"] / points["latency_ms"]
    below = (points["latency_ms"] - points[LATENCY_SPREAD[0]]) * scale
    above = (points[LATENCY_SPREAD[1]] - points["latency_ms"]) * scale
    return np.nan_to_num(np.vstack([below, above]).astype(float), nan=0.0).clip(min=0.0)


#: the legend entry of the error bars
SPREAD_LABEL = "front: latency IQR (25th-75th percentile)"


def _spread_bars(
    ax: plt.Axes, points: pd.DataFrame, cost: str, colour: Any, label: str | None = None
) -> None:
    """Each point's latency IQR as a horizontal error bar (nothing on the size axis or without quartiles)."""
    spread = latency_spread(points) if cost == "normalized_latency" else None
    if spread is not None and len(points):
        ax.errorbar(
            points[cost],
            points["accuracy"] * 100,
            xerr=spread,
            fmt="none",
            ecolor=colour,
            elinewidth=0.9,
            capsize=2,
            zorder=4,
            label=label,
        )


def _baseline_rows(rows: pd.DataFrame, precision: str, objective: str, host: str | None) -> pd.DataFrame:
    rows = rows[rows["baseline"] == precision]
    return rows[rows["host"] == host] if objective == "latency" else rows[rows["host"].isna()]


def _baseline_points(ax: plt.Axes, baselines: pd.DataFrame, objective: str, host: str | None) -> None:
    """The network's own FP32 and all-INT8 points (a reference network's rows are drawn apart)."""
    cost = COST_COLUMN[objective]
    own = own_baselines(baselines)
    for precision, style in BASELINE_STYLE.items():
        rows = _baseline_rows(own, precision, objective, host)
        if len(rows) and np.isfinite(rows[cost].iloc[0]):
            ax.scatter(rows[cost], rows["accuracy"] * 100, zorder=5, edgecolor="white", **style)


def _reference_points(
    ax: plt.Axes, baselines: pd.DataFrame, objective: str, host: str | None, precision: str
) -> None:
    """Each fixed reference network's point at one precision, labelled with its name (none: nothing)."""
    cost = COST_COLUMN[objective]
    for i, name in enumerate(reference_names(baselines)):
        rows = _baseline_rows(reference_baselines(baselines, name), precision, objective, host)
        if len(rows) and np.isfinite(rows[cost].iloc[0]):
            ax.scatter(
                rows[cost].iloc[:1],
                rows["accuracy"].iloc[:1] * 100,
                zorder=5,
                edgecolor="white",
                marker=REFERENCE_MARKER[precision],
                s=110,
                color=REFERENCE_COLOURS[i % len(REFERENCE_COLOURS)],
                label=f"{name} {precision.upper()}",
            )


def accuracy_vs_cost(
    evaluations: pd.DataFrame, baselines: pd.DataFrame, objective: str, title: str, space: str = "joint"
) -> plt.Figure:
    """Fig 1: every evaluated point faded, the LINAS Pareto front, the INT8 and FP32 baselines, and each
    reference network's all-INT8 point (Fig 1d/1h: ResNet50/101/152 shapes against OFA-ResNet). On latency,
    each front point carries its latency IQR as a horizontal error bar."""
    cost = COST_COLUMN[objective]
    points = evaluations[(evaluations["objective"] == objective) & (evaluations["space"] == space)]
    figure, ax = plt.subplots(figsize=(5.5, 4))
    sns.scatterplot(
        data=points, x=cost, y=points["accuracy"] * 100, hue="algorithm", alpha=0.25, s=18, ax=ax, legend=True
    )
    linas = points[points["algorithm"] == "linas"]
    if len(linas):
        front = front_of(linas, cost)
        ax.step(front[cost], front["accuracy"] * 100, where="post", color="tab:blue", lw=1.5)
        ax.scatter(front[cost], front["accuracy"] * 100, color="tab:blue", s=30, label="LINAS Pareto front")
        _spread_bars(ax, front, cost, "tab:blue", SPREAD_LABEL)
    host = _search_host(points, objective)
    _baseline_points(ax, baselines, objective, host)
    _reference_points(ax, baselines, objective, host, "int8")
    ax.set(xlabel=COST_LABEL[objective], ylabel="accuracy (%)", title=title)
    ax.legend(fontsize=7, loc="best")
    return figure


def _search_host(points: pd.DataFrame, objective: str) -> str | None:
    """The host a latency search measured on (None for size, or when no latency was measured)."""
    if objective == "latency" and "host" in points and points["host"].notna().any():
        return points["host"].dropna().iloc[0]
    return None


def search_progression(
    evaluations: pd.DataFrame, baselines: pd.DataFrame, objective: str, title: str
) -> plt.Figure:
    """Fig 2a/2b: LINAS evaluations coloured by evaluation index, with the FP32 baseline (on the latency
    objective: measured on the search's host) and each reference network's FP32 point (Fig 2b; size only,
    a reference's latency is measured all-INT8). On latency, the points on the front of those shown carry
    their latency IQR."""
    cost = COST_COLUMN[objective]
    points = evaluations[
        (evaluations["objective"] == objective)
        & (evaluations["space"] == "joint")
        & (evaluations["algorithm"] == "linas")
    ]
    figure, ax = plt.subplots(figsize=(5.5, 4))
    scatter = ax.scatter(
        points[cost], points["accuracy"] * 100, c=points["evaluation"], cmap="viridis", s=20, alpha=0.85
    )
    figure.colorbar(scatter, ax=ax, label="evaluation index")
    _spread_bars(ax, front_of(points, cost), cost, "black", SPREAD_LABEL)
    host = _search_host(points, objective)
    _baseline_points(ax, baselines[baselines["baseline"] == "fp32"], objective, host)
    _reference_points(ax, baselines, objective, host, "fp32")
    ax.set(xlabel=COST_LABEL[objective], ylabel="accuracy (%)", title=title)
    ax.legend(fontsize=7, loc="best")
    return figure


def _hypervolume_label(final: pd.Series) -> str:
    """mean +- std [95% t interval] of the final hypervolumes over seeds (one seed: its value)."""
    if final["seeds"] < 2:
        return f"{final['mean']:.3f} (1 seed)"
    return f"{final['mean']:.3f} +- {final['std']:.3f} [{final['ci95_low']:.3f}, {final['ci95_high']:.3f}]"


def _normalization_note(ax: plt.Axes, hypervolume: pd.DataFrame) -> None:
    """The normalization the hypervolumes were computed in, under the axes (as the summary wrote it)."""
    if {"accuracy_bounds", "cost_column", "cost_bounds", "reference_point"} <= set(hypervolume.columns):
        row = hypervolume.iloc[0]
        ax.annotate(
            f"normalization: accuracy {row['accuracy_bounds']}, {row['cost_column']} {row['cost_bounds']}, "
            f"reference point {row['reference_point']}",
            xy=(0, -0.18),
            xycoords="axes fraction",
            fontsize=6,
            color="dimgray",
        )


def hypervolume_curves(hypervolume: pd.DataFrame, objective: str, title: str) -> plt.Figure:
    """Fig 2c: hypervolume vs evaluations per algorithm, the mean over seeds with its 95% t interval as a
    band; the legend gives the final mean +- std [95% interval]."""
    data = hypervolume[(hypervolume["objective"] == objective) & (hypervolume["space"] == "joint")]
    final = final_hypervolumes(data).set_index("algorithm")
    figure, ax = plt.subplots(figsize=(5.5, 4))
    colours = dict(zip(sorted(final.index), sns.color_palette("colorblind", len(final)), strict=True))
    for algorithm, runs in data.groupby("algorithm"):
        by_step = runs.groupby("evaluations")["hypervolume"]
        steps = np.array(sorted(by_step.groups))
        summaries = [t_interval(by_step.get_group(step).to_numpy(dtype=float)) for step in steps]
        mean = [summary.mean for summary in summaries]
        label = f"{algorithm}: {_hypervolume_label(final.loc[algorithm])}"
        ax.plot(steps, mean, color=colours[algorithm], label=label)
        ax.fill_between(
            steps,
            [x.low for x in summaries],
            [x.high for x in summaries],
            color=colours[algorithm],
            alpha=0.2,
        )
    ax.set(xlabel="evaluations", ylabel="hypervolume (normalized)", title=title)
    ax.legend(fontsize=7, loc="lower right", title="final: mean +- std [95% t interval]", title_fontsize=7)
    _normalization_note(ax, data)
    return figure


def space_ablation(
    evaluations: pd.DataFrame, baselines: pd.DataFrame, title: str, hypervolume: pd.DataFrame | None = None
) -> plt.Figure:
    """Fig 3: quantization-policy-only search against joint search (size objective, same budget); with the
    hypervolume table, each search's final hypervolume (one shared normalization) in the legend."""
    cost = COST_COLUMN["size"]
    points = evaluations[(evaluations["objective"] == "size") & (evaluations["algorithm"] == "linas")]
    final = pd.DataFrame()
    if hypervolume is not None:
        linas = hypervolume[(hypervolume["objective"] == "size") & (hypervolume["algorithm"] == "linas")]
        final = final_hypervolumes(linas).set_index("space")
    figure, ax = plt.subplots(figsize=(5.5, 4))
    palette = {"joint": "tab:blue", "quant": "tab:orange", "arch": "tab:green"}
    for space, group in points.groupby("space"):
        ax.scatter(group[cost], group["accuracy"] * 100, alpha=0.25, s=16, color=palette[space])
        front = front_of(group, cost)
        ax.step(front[cost], front["accuracy"] * 100, where="post", color=palette[space], lw=1.5)
        label = f"{space} search"
        if space in final.index:
            label += f", hypervolume {_hypervolume_label(final.loc[space])}"
        ax.scatter(front[cost], front["accuracy"] * 100, color=palette[space], s=28, label=label)
    _baseline_points(ax, baselines, "size", None)
    ax.set(xlabel=COST_LABEL["size"], ylabel="accuracy (%)", title=title)
    ax.legend(fontsize=7, loc="best")
    if hypervolume is not None and len(final):
        _normalization_note(ax, hypervolume[hypervolume["objective"] == "size"])
    return figure


def network_figures(
    net: str, evaluations: pd.DataFrame, baselines: pd.DataFrame, hypervolume: pd.DataFrame, out_dir: Path
) -> list[Path]:
    """Every figure the configured experiments of one super-network support."""
    sns.set_theme(style="whitegrid", context="paper")
    written: list[Path] = []
    experiments = set(zip(evaluations["space"], evaluations["objective"], strict=True))
    for objective, figure_id in (("size", "fig1_accuracy_vs_size"), ("latency", "fig1_accuracy_vs_latency")):
        if ("joint", objective) in experiments:
            title = f"{net}: joint search, accuracy vs {objective}"
            written += save(accuracy_vs_cost(evaluations, baselines, objective, title), out_dir, figure_id)
            written += save(
                search_progression(evaluations, baselines, objective, f"{net}: LINAS search progression"),
                out_dir,
                f"fig2_progression_{objective}",
            )
            written += save(
                hypervolume_curves(hypervolume, objective, f"{net}: hypervolume, accuracy + {objective}"),
                out_dir,
                f"fig2_hypervolume_{objective}",
            )
    if ("quant", "size") in experiments and ("joint", "size") in experiments:
        written += save(
            space_ablation(evaluations, baselines, f"{net}: quantization-only vs joint search", hypervolume),
            out_dir,
            "fig3_quant_vs_joint",
        )
    return written


def host_latency_front(hosts: pd.DataFrame, title: str) -> plt.Figure:
    """The final LINAS latency front measured on every host profile: accuracy vs latency normalized by each
    host's own all-INT8 baseline (one colour per host, each host's front as a step line, its points with
    their latency IQR where the table has quartiles), and each member's
    latency rank per host (a line per network; crossing lines are networks that swap places)."""
    order = sorted(hosts["host"].unique())
    palette = dict(zip(order, sns.color_palette("colorblind", len(order)), strict=True))
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 2]}, constrained_layout=True
    )
    sns.scatterplot(
        data=hosts.assign(accuracy_pct=hosts["accuracy"] * 100),
        x="normalized_latency",
        y="accuracy_pct",
        hue="host",
        style="host",
        hue_order=order,
        style_order=order,
        palette=palette,
        s=45,
        ax=left,
    )
    for host, group in hosts.groupby("host"):
        front = group[group["on_front"].astype(bool)].sort_values("normalized_latency")
        left.step(
            front["normalized_latency"], front["accuracy"] * 100, where="post", color=palette[host], lw=1.2
        )
        _spread_bars(left, front, "normalized_latency", palette[host])
    left.axvline(1.0, color="tab:red", ls=":", lw=1, label="all-INT8 super-network (each host)")
    left.set(xlabel=COST_LABEL["latency"], ylabel="accuracy (%)", title=title)
    left.legend(fontsize=7, loc="best")

    position = {host: i for i, host in enumerate(order)}
    accuracy = hosts.groupby("member")["accuracy"].first()
    colours = plt.get_cmap("viridis")
    # at least one accuracy point wide, so that a front of equally accurate networks still has a scale
    low, high = accuracy.min(), accuracy.max()
    span = (low, high) if high - low >= 0.01 else ((low + high) / 2 - 0.005, (low + high) / 2 + 0.005)
    for member, group in hosts.groupby("member"):
        group = group.sort_values("host", key=lambda names: names.map(position))
        shade = colours((accuracy[member] - span[0]) / (span[1] - span[0]))
        right.plot(group["host"].map(position), group["rank"], marker="o", color=shade, lw=1.2, alpha=0.9)
    right.set_xticks(range(len(order)), order)
    right.set_xlim(-0.5, len(order) - 0.5)
    members = hosts["member"].nunique()
    if members <= 15:
        right.set_yticks(range(1, members + 1))
    else:
        right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylim(members + 0.5, 0.5)  # rank 1 on top
    right.set(
        xlabel="host profile", ylabel="latency rank on the host (1 = fastest)", title="ranking per host"
    )
    scale = plt.cm.ScalarMappable(cmap=colours, norm=plt.Normalize(span[0] * 100, span[1] * 100))
    figure.colorbar(scale, ax=right, label="accuracy (%)")
    return figure


def host_figures(net: str, hosts: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The final LINAS latency front of one super-network across host profiles (a figure that says so when
    there is none: every latency of the search stayed unstable)."""
    sns.set_theme(style="whitegrid", context="paper")
    if hosts.empty:
        figure, axes = plt.subplots(figsize=(6, 2.5), constrained_layout=True)
        axes.set_axis_off()
        axes.text(
            0.5,
            0.5,
            f"{net}: no final LINAS latency front to measure on the hosts:\n"
            "every latency of the search stayed unstable (summary/unstable_latency.csv)",
            ha="center",
            va="center",
        )
        return save(figure, out_dir, "hosts_latency_front")
    searched = ", ".join(sorted(hosts["search_host"].dropna().unique()))
    title = f"{net}: final LINAS latency front (searched on {searched}) on every host"
    return save(host_latency_front(hosts, title), out_dir, "hosts_latency_front")
