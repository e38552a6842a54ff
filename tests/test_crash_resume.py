"""Crash and resume of the real smoke workflow, SIGKILLed at three points, offline (issue 6, items 2, 4, 6).

One run of config/smoke.yaml on a temporary copy of the workflow is killed (SIGKILL to every process group of
Snakemake and its jobs) at three points, each detected from the files and logs the jobs write. Its target is
LINAS's two joint searches (accuracy + size, accuracy + latency), which hold every kind of job a kill can
catch (training, evaluation shards, latency jobs, checkpointed proposals) at a fraction of the whole smoke
run's cost (issue 14, item 9; the shards of the accuracy + size search also evaluate the populations of
the NSGA-II and random size searches it pools with, so those searches run too); the whole run is
tests/test_workflow.py's.

1. during super-network training (the training log shows the first epoch started, no super-network yet);
2. in the middle of an evaluation shard (its log shows a freshly evaluated candidate, the shard has more,
   its table is not written), or of a latency job if no shard is evaluating afresh at that point;
3. during a latency job (likewise), or a shard if no latency job is.

After each kill the documented recovery runs (`snakemake --unlock`, then the same command again). The test
shows that the run finishes; that not one finished evaluation is computed again (every evaluation stored
before a kill, and every output file, is untouched by the reruns; the killed jobs' reruns read the finished
evaluations back as cached, counted); and that the two searches' evaluations equal those of the same
searches in the uninterrupted smoke run with the same seeds (`smoke_run`, tests/conftest.py), latency aside.
That comparison is also the determinism check (item 4): two runs of one config and seeds give identical
candidate sequences and identical accuracy and size for every candidate. Measured latency is noise, so the
candidates that LINAS proposes from it after the first iteration may differ; for those, accuracy and size
are compared wherever both runs evaluated the same network.

Every process of the killed run runs under tests/netguard/sitecustomize.py (no connection or name lookup
beyond this machine, HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE), which records any attempt: there is none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.workflow_utils import copy_workflow, snakemake_command, snakemake_env

pytestmark = pytest.mark.slow

GUARD = Path(__file__).resolve().parent / "netguard"
RUN_TIMEOUT = 3600
#: columns that depend on measured time or on what happened to be cached, not on the configuration
NOT_DETERMINED = re.compile(r"latency|normalized|cached|^host$|cpu_model")
#: LINAS's joint searches of config/smoke.yaml: the killed run's target
RUNS = {objective: f"results/bert/search/joint-{objective}/linas/seed0" for objective in ("size", "latency")}
TARGETS = [f"{run}/evaluations.csv" for run in RUNS.values()]
SHARDS = 2  # config/smoke.yaml


def _guarded_env(guard_log: Path) -> dict[str, str]:
    return snakemake_env(
        PYTHONPATH=os.pathsep.join([str(GUARD), os.environ.get("PYTHONPATH", "")]),
        SIMQNAS_NETGUARD_LOG=str(guard_log),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )


def _dead(member: psutil.Process) -> bool:
    try:
        return member.status() == psutil.STATUS_ZOMBIE  # killed, not yet reaped by its new parent
    except psutil.NoSuchProcess:
        return True


def _kill_workflow(process: subprocess.Popen) -> int:
    """SIGKILL Snakemake and every job it started (each process group among them); the number killed."""
    root = psutil.Process(process.pid)
    tree = [root, *root.children(recursive=True)]
    groups = set()
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(member.pid))
    assert os.getpgrp() not in groups  # the workflow runs in its own session, never the test's group
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    process.wait(timeout=60)
    deadline = time.monotonic() + 60
    while not all(_dead(member) for member in tree):
        assert time.monotonic() < deadline, f"survived SIGKILL: {[m for m in tree if not _dead(m)]}"
        time.sleep(0.1)
    return len(tree)


Moment = tuple[str, Path | None]  # what was running when killed, and the killed job's output
#: a kill point: asked with the wall-clock time (ns) the current run started, names the moment or None
Condition = Callable[[int], Moment | None]


def _run_until(workdir: Path, env: dict[str, str], condition: Condition, log: Path) -> dict:
    """Start the workflow; kill it once `condition` names the moment, else fail."""
    started, started_ns = time.monotonic(), time.time_ns()
    with open(log, "a") as out:
        process = subprocess.Popen(
            snakemake_command(*TARGETS),
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while process.poll() is None:
            moment = condition(started_ns)
            if moment:
                killed = _kill_workflow(process)
                return {
                    "moment": moment[0],
                    "job_output": moment[1],
                    "processes_killed": killed,
                    "seconds": round(time.monotonic() - started),
                }
            if time.monotonic() - started > RUN_TIMEOUT:
                pytest.fail(f"no kill point within {RUN_TIMEOUT} s")
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            _kill_workflow(process)
    pytest.fail(f"the workflow ended (exit {process.returncode}) before the kill point; see {log}")


def _lines(path: Path, pattern: str) -> list[str]:
    try:
        return re.findall(pattern, path.read_text(errors="replace"), flags=re.MULTILINE)
    except FileNotFoundError:
        return []


def during_training(workdir: Path) -> Condition:
    log = workdir / "results/logs/bert/train_supernet.log"

    def condition(_: int) -> Moment | None:
        started = _lines(log, r"epoch 1/\d+")  # tqdm's bar appears when the first epoch starts
        if started and not (workdir / "results/bert/supernet.safetensors").exists():
            return "super-network training, first epoch running", None
        return None

    return condition


#: where a job's log lies under results/logs: a shard pools an iteration of every size run of a space
JOB_LOGS = {"shard*": "*/search/*/shards/it*/shard*.log", "latency-*": "*/search/*/*/*/it*/latency-*.log"}


def _candidate_count(folder: Path, log: Path) -> int:
    """How many candidates the job of `log`, whose table goes to `folder`, has to evaluate: a latency job
    its run's iteration, a shard its share of the iteration's pool (every size run of the space)."""
    if log.stem.startswith("latency"):
        return len(json.loads((folder / "candidates.json").read_text())["genomes"])
    pool = folder.parent.parent.glob(f"*/seed*/{folder.name}/candidates.json")
    count = sum(len(json.loads(path.read_text())["genomes"]) for path in pool)
    return len(range(int(log.stem[5:]), count, SHARDS))


def in_the_middle_of(workdir: Path, job: str) -> Condition:
    """A `job` (shard* or latency-*) of the current run that has just evaluated a candidate afresh and has
    more to do (the log of a job killed by an earlier run, not yet run again, is stale: not that moment)."""

    def condition(since_ns: int) -> Moment | None:
        for log in sorted((workdir / "results/logs").glob(JOB_LOGS[job])):
            with contextlib.suppress(FileNotFoundError):  # Snakemake may remove it meanwhile
                if log.stat().st_mtime_ns < since_ns:
                    continue
            folder = workdir / "results" / log.parent.relative_to(workdir / "results/logs")
            output = folder / log.name.replace(".log", ".csv")
            # "(8.1 s)" / "(measured)": evaluated now, "(cached)": read back; logged once stored
            notes = _lines(log, r"candidate \d+: .*\((.*)\)$")
            if output.exists() or all(note == "cached" for note in notes):
                continue
            members = _candidate_count(folder, log)
            if len(notes) < members:
                return f"{log.relative_to(workdir)}: {len(notes)} of {members} candidates done", output
        return None

    return condition


def first_of(*conditions: Condition) -> Condition:
    """The moment the first of `conditions` that names one names."""

    def condition(since_ns: int) -> Moment | None:
        for candidate in conditions:
            moment = candidate(since_ns)
            if moment:
                return moment
        return None

    return condition


def _snapshot(workdir: Path) -> dict[str, tuple[int, str]]:
    """Every output file (logs, benchmarks and hidden temporaries of killed writers aside): its mtime and
    content hash."""
    files = {}
    for path in (workdir / "results").rglob("*"):
        relative = path.relative_to(workdir / "results")
        hidden = any(part.startswith(".") for part in relative.parts)
        if path.is_file() and relative.parts[0] not in ("logs", "benchmarks") and not hidden:
            files[str(relative)] = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return files


def _store_keys(snapshot: dict[str, tuple[int, str]]) -> set[str]:
    return {Path(p).stem for p in snapshot if p.startswith("bert/evals/")}


def _table_reads(path: Path) -> pd.DataFrame:
    """(key, cached) of each evaluation a shard or latency table holds: a shard's quality, a latency job's
    latency and, in a run without shards, the quality it measured in the same pass."""
    table = pd.read_csv(path)
    kinds = [kind for kind in ("quality", "latency") if f"{kind}_key" in table]
    assert kinds, f"{path}: no evaluation keys"
    frames = [
        pd.DataFrame({"key": table[f"{kind}_key"], "cached": table[f"{kind}_cached"].astype(bool)})
        for kind in kinds
    ]
    return pd.concat(frames, ignore_index=True)


def _reads(workdir: Path, after_ns: int = 0, before_ns: int | None = None) -> pd.DataFrame:
    """The evaluations read or computed by the jobs whose tables were written between two moments."""
    frames = [
        _table_reads(path)
        for pattern in ("*/shards/it*/shard*.csv", "*/*/*/it*/latency-*.csv")
        for path in (workdir / "results/bert/search").glob(pattern)
        if after_ns < path.stat().st_mtime_ns and (before_ns is None or path.stat().st_mtime_ns < before_ns)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"key": [], "cached": []})


def test_killed_three_times_resumes_to_the_uninterrupted_result_offline(smoke_run: Path, tmp_path: Path):
    workdir = copy_workflow(tmp_path / "workflow")
    guard_log = tmp_path / "netguard.log"
    env = _guarded_env(guard_log)
    output_log = tmp_path / "snakemake.log"
    shard = in_the_middle_of(workdir, "shard*")
    latency = in_the_middle_of(workdir, "latency-*")
    # which evaluation jobs still measure something afresh depends on the order Snakemake runs them in (a
    # latency run's one-pass job stores the quality a size run's shard then reads back): the second kill
    # prefers a shard, the third a latency job, each taking the other kind when only it is running
    points = [during_training(workdir), first_of(shard, latency), first_of(latency, shard)]
    started = time.monotonic()
    kills = []
    for condition in points:
        kill = _run_until(workdir, env, condition, output_log)
        snapshot = _snapshot(workdir)
        kill.update(time_ns=time.time_ns(), snapshot=snapshot, store_keys=_store_keys(snapshot))
        kills.append(kill)
        unlock = subprocess.run(
            snakemake_command("--unlock"), cwd=workdir, env=env, capture_output=True, text=True, timeout=600
        )
        assert unlock.returncode == 0, unlock.stderr[-3000:]
    final = subprocess.run(
        snakemake_command(*TARGETS),
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert final.returncode == 0, final.stderr[-6000:]
    total_seconds = round(time.monotonic() - started)
    end = _snapshot(workdir)
    stored = _store_keys(end)

    # not one finished evaluation, nor any other finished output, was computed or written again
    report = []
    for number, kill in enumerate(kills, 1):
        changed = [path for path, state in kill["snapshot"].items() if end.get(path) != state]
        assert not changed, f"kill {number} ({kill['moment']}): rewritten after the kill: {changed[:5]}"
        later = _reads(workdir, after_ns=kill["time_ns"])
        finished = later[later["key"].isin(kill["store_keys"])]
        assert finished["cached"].all(), f"kill {number}: finished evaluations computed again"
        entry = {
            "moment": kill["moment"],
            "seconds_to_kill": kill["seconds"],
            "processes_killed": kill["processes_killed"],
            "evaluations_finished_at_kill": len(kill["store_keys"]),
            "later_reads_of_those_cached": len(finished),
            "evaluated_after_the_kill": int((~later["cached"]).sum()),
        }
        if kill["job_output"] is not None:  # the killed job, run again
            rerun = _table_reads(kill["job_output"])
            entry["killed_job_rerun_cached"] = int(rerun["cached"].sum())
            entry["killed_job_rerun_evaluated"] = int((~rerun["cached"]).sum())
            assert entry["killed_job_rerun_cached"] >= 1, entry
        report.append(entry)
    # every stored evaluation was computed once: by one finished job, or by a killed job before its kill
    everything = _reads(workdir)
    computed = everything.loc[~everything["cached"], "key"]
    assert computed.is_unique
    by_killed_jobs = stored - set(computed)
    assert set(computed) <= stored
    assert by_killed_jobs <= set().union(*(kill["store_keys"] for kill in kills))
    summary = {
        "after_each_kill": report,
        "evaluations_stored": len(stored),
        "computed_by_finished_jobs": len(computed),
        "computed_by_killed_jobs_before_the_kill_then_reused": len(by_killed_jobs),
        "total_seconds": total_seconds,
    }
    print(json.dumps(summary, indent=1))
    (tmp_path / "crash-resume.json").write_text(json.dumps(summary, indent=1))

    # no process tried to reach the network
    assert not guard_log.exists(), guard_log.read_text()[:3000]

    # the same evaluations as the uninterrupted run (and a determinism check of two runs)
    crashed, reference = (
        pd.concat([pd.read_csv(root / run / "evaluations.csv") for run in RUNS.values()], ignore_index=True)
        for root in (workdir, smoke_run)
    )
    determined = [c for c in reference.columns if not NOT_DETERMINED.search(c)]
    assert {"genome", "accuracy", "size_bytes", "quality_key", "evaluation"} <= set(determined)
    assert len(crashed) == len(reference)
    follows_latency = (reference["objective"] == "latency") & (reference["iteration"] > 0)
    assert (~follows_latency).sum() > len(reference) / 2
    pd.testing.assert_frame_equal(
        crashed.loc[~follows_latency, determined].reset_index(drop=True),
        reference.loc[~follows_latency, determined].reset_index(drop=True),
        check_exact=True,
    )
    both = crashed.merge(reference, on="quality_key", suffixes=("", "_reference"))
    assert (both["accuracy"] == both["accuracy_reference"]).all()
    assert (both["size_bytes"] == both["size_bytes_reference"]).all()
    # a second run has nothing left to do
    again = subprocess.run(
        snakemake_command("-n", *TARGETS), cwd=workdir, env=env, capture_output=True, text=True
    )
    assert "Nothing to be done" in again.stdout + again.stderr
