"""Running the real workflow from tests: a temporary copy of it, and `snakemake` as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "report", "profiles", "envs")


def copy_workflow(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy(source, target / name)
    return target


def snakemake_command(*args: str, configfile: str = "config/smoke.yaml") -> list[str]:
    # --configfile takes several values: targets go before it
    return [sys.executable, "-m", "snakemake", "--cores", "2", *args, "--configfile", configfile]


def snakemake_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "SLURM_CONF": "/dev/null", **extra}


def snakemake(
    workdir: Path, *args: str, timeout: int = 1800, configfile: str = "config/smoke.yaml"
) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_command(*args, configfile=configfile),
        cwd=workdir,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def all_evaluations(results: Path, net: str) -> pd.DataFrame:
    """Every evaluation of a network's runs: `evaluations.csv` and those its summary set aside because
    their latency stayed unstable (`unstable_latency.csv`; which ones depends on the machine's load), in
    run and evaluation order."""
    summary = results / net / "summary"
    frames = [pd.read_csv(summary / "evaluations.csv")]
    unstable = summary / "unstable_latency.csv"
    if unstable.is_file() and unstable.stat().st_size:
        frames.append(pd.read_csv(unstable))
    frame = pd.concat(frames, ignore_index=True)
    order = [c for c in ("space", "objective", "algorithm", "seed", "evaluation") if c in frame]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)
