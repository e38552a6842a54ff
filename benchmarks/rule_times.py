"""Where a workflow run's time went: Snakemake's `benchmark:` files summed per rule.

The heavy rules write `results/benchmarks/<path>.tsv` (wall seconds, peak memory, CPU time of each job). This
groups them by rule (with --per-network, by network and rule: the network is the file's first directory) and
prints, per group, the jobs, total, mean and longest wall time, CPU time, the share
of the summed job time and the peak memory; writes OUT/rule_times.csv (OUT: --out, default benchmarks/out).

    .venv/bin/python benchmarks/rule_times.py --results results

Jobs of a local run with `--cores 2` and 2-thread jobs run one at a time, so the summed job time is close to
the run's wall time; the difference is Snakemake's own scheduling and the DAG re-evaluation after each
checkpoint.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

#: benchmark file (path below results/benchmarks, no suffix) -> its rule, for files not named after the rule
RULE_PATTERNS = (
    (re.compile(r"^data/"), "prepare_data"),
    (re.compile(r"/baseline_latency_"), "baseline_latency"),
    (re.compile(r"/baseline_(fp32|int8)$"), "baseline_quality"),
    (re.compile(r"/test_baseline_(fp32|int8)$"), "test_baseline"),
    (re.compile(r"/hosts/latency-"), "remeasure_front_latency"),
    (re.compile(r"/it\d+/latency-"), "measure_latency"),
    (re.compile(r"/it\d+/shard\d+$"), "evaluate_shard"),
)


def rule_of(path: Path, root: Path) -> str:
    """The rule a benchmark file belongs to (rules/*.smk name them: `<net>/train_supernet.tsv`,
    `<net>/search/<run>/it0/shard0.tsv`, ...)."""
    name = path.relative_to(root).with_suffix("").as_posix()
    for pattern, rule in RULE_PATTERNS:
        if pattern.search(name):
            return rule
    return name.rsplit("/", 1)[-1]


def rule_times(root: Path, per_network: bool = False) -> pd.DataFrame:
    """One row per rule (per network and rule with `per_network`): jobs, total / mean / max wall seconds,
    CPU seconds, peak memory (MB)."""
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        record = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append(
            {
                "network": path.relative_to(root).parts[0],
                "rule": rule_of(path, root),
                "file": str(path.relative_to(root)),
                "s": float(record["s"]),
                "cpu_time": float(record["cpu_time"]),
                "max_rss": float(record["max_rss"]),
            }
        )
    if not rows:
        raise SystemExit(f"{root}: no benchmark files (run the workflow first)")
    jobs = pd.DataFrame(rows)
    keys = ["network", "rule"] if per_network else ["rule"]
    table = jobs.groupby(keys).agg(
        jobs=("s", "size"),
        total_s=("s", "sum"),
        mean_s=("s", "mean"),
        max_s=("s", "max"),
        cpu_s=("cpu_time", "sum"),
        peak_rss_mb=("max_rss", "max"),
    )
    table["share"] = table["total_s"] / table["total_s"].sum()
    table = table.reset_index()
    if per_network:
        # networks in order of their total time, rules by time within each
        network_total = table.groupby("network")["total_s"].transform("sum")
        order = table.assign(network_total=network_total).sort_values(
            ["network_total", "network", "total_s"], ascending=False
        )
        return order.drop(columns="network_total").reset_index(drop=True)
    return table.sort_values("total_s", ascending=False).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--per-network", action="store_true", help="group by network and rule")
    args = parser.parse_args()
    table = rule_times(args.results / "benchmarks", per_network=args.per_network)
    total = table["total_s"].sum()
    print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print(f"\nsummed job wall time: {total:.0f} s ({total / 3600:.2f} h) over {table['jobs'].sum()} jobs")
    if args.per_network:
        networks = table.groupby("network")[["jobs", "total_s"]].sum().sort_values("total_s", ascending=False)
        print("\n" + networks.to_string(float_format=lambda x: f"{x:.0f}"))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "rule_times_per_network.csv" if args.per_network else "rule_times.csv"
    table.to_csv(args.out / name, index=False)


if __name__ == "__main__":
    main()
