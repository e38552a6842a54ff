"""The smoke workflow on a real SLURM cluster, checked against SLURM's own records and the local smoke run.

`config/smoke-slurm.yaml` (config/smoke.yaml's data, super-network and budgets; LINAS only) names two host
profiles whose features are the cluster's two node features. The run goes through `--profile profiles/slurm
--workflow-profile none` as a user's would; while it runs, a watcher kills (`scancel --signal=KILL`) one
evaluation shard job in the middle of its work. Then:

- every latency job (baseline_latency, measure_latency, remeasure_front_latency) ran, per SLURM, on a node
  carrying its host profile's feature, and its results name that node and feature;
- SLURM recorded the killed job as cancelled, Snakemake submitted it again, and the retry kept the evaluation
  the killed job had finished;
- accuracy and size equal those of the same LINAS searches in the local run of config/smoke.yaml
  (`smoke_run`, tests/conftest.py: same data, super-network, seeds and budgets; accuracy and size do not
  depend on where they run; latency does, and it steers the latency search, so there only networks both
  runs evaluated are compared). The SLURM run has the machine to itself: a second, local run of its config
  beside it cost CI more minutes than it filled of SLURM's scheduling gaps.

Apart from that run, the same config's super-network is trained in two data-parallel processes
(`training.processes: 2`) as one SLURM job.

Skipped unless a SLURM cluster answers (CI: `.ci/slurm/up.sh`, then `source /run/simqnas-slurm/env.sh`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.slurm_utils import (
    SlurmJob,
    constraint_violations,
    node_features,
    slurm_env,
    slurm_jobs,
    slurm_unavailable_reason,
)
from tests.workflow_utils import copy_workflow

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "config/smoke-slurm.yaml"
NET = "bert"
LATENCY_RULES = {"baseline_latency", "measure_latency", "remeasure_front_latency"}
# an evaluation shard pools iteration `it` of every size run of a space
SHARD = "{net}/search/{space}-size/shards/it{it}/shard{shard}"

_reason = slurm_unavailable_reason()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


def start_snakemake(workdir: Path, *args: str, env: dict[str, str], timeout: int) -> subprocess.Popen:
    """Snakemake in `workdir`, in the background; its output goes to `workdir`/snakemake.out."""
    # `timeout -k 30`: a hung status loop of the SLURM executor ignores SIGTERM's graceful wait
    command = ["timeout", "--foreground", "-k", "30", str(timeout), sys.executable, "-m", "snakemake", *args]
    with open(workdir / "snakemake.out", "w") as out:
        return subprocess.Popen(
            command, cwd=workdir, env={**env, "HF_HUB_OFFLINE": "1"}, stdout=out, stderr=subprocess.STDOUT
        )


def finish(process: subprocess.Popen, workdir: Path, what: str, started: float) -> float:
    """Wait for a run started by start_snakemake (at wall-clock time `started`); fail the tests with its
    output's end if it failed, else return its wall time in seconds (until its last output)."""
    process.wait()
    output = workdir / "snakemake.out"
    if process.returncode != 0:
        pytest.fail(f"{what} failed:\n{output.read_text()[-8000:]}")
    return output.stat().st_mtime - started


def hosts() -> dict[str, dict]:
    return yaml.safe_load((ROOT / CONFIG).read_text())["hosts"]


class ShardKiller(threading.Thread):
    """Kills one running evaluation shard job of the size search in the middle of its work: once its log
    shows a finished candidate and the shard has more to go, `scancel --signal=KILL` (what an admin or a
    node's OOM handling does). If the job completed before the signal landed, it tries the next one."""

    def __init__(self, workdir: Path, shards: int) -> None:
        super().__init__(daemon=True)
        self.workdir = workdir
        self.shards = shards
        self.done = threading.Event()
        self.tried: set[str] = set()
        self.killed: SlurmJob | None = None
        self.log_at_kill = ""

    def progress(self, job: SlurmJob) -> tuple[str, int, int]:
        """The shard's log, how many of its candidates it has finished, and how many it has."""
        wildcards = job.wildcards
        log = self.workdir / "results/logs" / f"{SHARD.format(**wildcards)}.log"
        runs = self.workdir / "results/{net}/search/{space}-size".format(**wildcards)
        pool = runs.glob(f"*/seed*/it{wildcards['it']}/candidates.json")
        text = log.read_text() if log.exists() else ""
        count = sum(len(json.loads(path.read_text())["genomes"]) for path in pool)
        members = len(range(int(wildcards["shard"]), count, self.shards))
        return text, sum(" candidate " in line for line in text.splitlines()), members

    def run(self) -> None:
        while not self.done.is_set():
            time.sleep(0.5)
            try:
                jobs = slurm_jobs(self.workdir)
            except (FileNotFoundError, subprocess.SubprocessError):
                continue
            if self.killed is not None:
                state = next(j.state for j in jobs if j.slurm_id == self.killed.slurm_id)
                if state == "COMPLETED":  # too late: the job finished before the signal landed
                    self.killed = None
                elif state in {"FAILED", "CANCELLED"}:
                    return
                continue
            for job in jobs:
                if not (
                    job.rule == "evaluate_shard" and job.state == "RUNNING" and job.slurm_id not in self.tried
                ):
                    continue
                log, finished, members = self.progress(job)
                if 1 <= finished < members:
                    self.tried.add(job.slurm_id)
                    out = subprocess.run(
                        ["scancel", "--signal=KILL", job.slurm_id],
                        capture_output=True,
                        text=True,
                        env=slurm_env(),
                        timeout=30,
                    )
                    if out.returncode == 0:
                        self.killed, self.log_at_kill = job, log
                        break


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory) -> dict:
    """The SLURM run of config/smoke-slurm.yaml, one evaluation shard killed in the middle of its work."""
    features = set().union(*node_features().values())
    wanted = {spec["feature"] for spec in hosts().values()}
    if not wanted <= features:
        pytest.skip(f"{CONFIG} needs node features {sorted(wanted)}; the cluster has {sorted(features)}")
    slurm_dir = copy_workflow(tmp_path_factory.mktemp("slurm_smoke"))
    killer = ShardKiller(slurm_dir, yaml.safe_load((ROOT / CONFIG).read_text())["shards"])
    started = time.time()
    killer.start()
    try:
        slurm = start_snakemake(
            slurm_dir,
            "results/figures",
            "--profile",
            "profiles/slurm",
            "--workflow-profile",
            "none",
            "--slurm-keep-successful-logs",
            "--configfile",
            CONFIG,
            env=slurm_env(),
            timeout=3000,
        )
        seconds = finish(slurm, slurm_dir, "SLURM smoke workflow", started)
    finally:
        killer.done.set()
        killer.join(timeout=60)
    print(f"SLURM smoke workflow {seconds:.0f} s")
    return {"workdir": slurm_dir, "jobs": slurm_jobs(slurm_dir), "killer": killer}


def test_every_latency_job_ran_on_a_node_with_its_host_feature(slurm_run):
    jobs, profiles = slurm_run["jobs"], hosts()
    latency = [job for job in jobs if job.rule in LATENCY_RULES]
    assert constraint_violations(jobs) == []
    for job in latency:
        feature = profiles[job.wildcards["host"]]["feature"]
        assert job.constraint == feature, job
        assert job.state == "COMPLETED", job
        assert job.requested_features in (None, feature), job  # None once SLURM forgot the job
        assert job.nodes and feature in job.node_features, job
    ran = {(job.rule, job.wildcards["host"]) for job in latency}
    search_host = yaml.safe_load((ROOT / CONFIG).read_text())["experiments"][NET]["host"]
    for host in profiles:  # every host: its all-INT8 baseline and the final front
        assert ("baseline_latency", host) in ran and ("remeasure_front_latency", host) in ran
    assert {host for rule, host in ran if rule == "measure_latency"} == {search_host}


def test_latency_results_name_the_node_and_feature_they_were_measured_on(slurm_run):
    workdir, profiles = slurm_run["workdir"], hosts()
    node_of = {
        (job.rule, job.wildcards["host"], job.wildcards.get("precision")): job.nodes
        for job in slurm_run["jobs"]
        if job.rule in LATENCY_RULES and job.state == "COMPLETED"
    }
    for host, profile in profiles.items():
        record = json.loads((workdir / f"results/{NET}/baseline/latency-{host}/int8.json").read_text())
        assert record["host"] == host
        assert record["host_info"]["slurm"]["node"] in node_of["baseline_latency", host, "int8"]
        assert profile["feature"] in record["host_info"]["slurm"]["features"]
        assert record["host_info"]["cpu_model"]
        remeasured = pd.read_csv(workdir / f"results/{NET}/hosts/latency-{host}.csv")
        assert (remeasured["host"] == host).all()
        assert all(profile["feature"] in f.split(";") for f in remeasured["node_features"])
        fresh = remeasured[~remeasured["latency_cached"]]  # measured by this job, not read from the store
        assert set(fresh["node"]) <= set(node_of["remeasure_front_latency", host, None])


def test_final_front_is_measured_on_every_host(slurm_run):
    workdir = slurm_run["workdir"]
    table = pd.read_csv(workdir / f"results/{NET}/summary/hosts.csv")
    front = pd.read_csv(workdir / f"results/{NET}/hosts/front.csv")
    assert sorted(table["host"].unique()) == sorted(hosts())
    assert table.groupby("host")["member"].apply(sorted).map(lambda m: m == list(front["member"])).all()
    assert (table["normalized_latency"] > 0).all()
    figure = workdir / f"results/figures/{NET}/hosts_latency_front"
    assert figure.with_suffix(".png").stat().st_size > 10_000 and figure.with_suffix(".pdf").is_file()


def test_killed_job_was_retried_and_kept_what_it_had_finished(slurm_run):
    killer, jobs = slurm_run["killer"], slurm_run["jobs"]
    assert killer.killed is not None, f"no evaluation shard was caught mid-run (tried {killer.tried})"
    attempts = [job for job in jobs if job.snakemake_jobid == killer.killed.snakemake_jobid]
    # SLURM records a job whose processes got scancel's SIGKILL as CANCELLED (FAILED if they died otherwise)
    assert [(job.slurm_id == killer.killed.slurm_id, job.state) for job in attempts] in (
        [(True, "CANCELLED"), (False, "COMPLETED")],
        [(True, "FAILED"), (False, "COMPLETED")],
    ), attempts
    # the retry read back the evaluation the killed job had stored and computed the rest
    wildcards = killer.killed.wildcards
    shard = pd.read_csv(slurm_run["workdir"] / f"results/{SHARD.format(**wildcards)}.csv")
    finished = sum(" candidate " in line for line in killer.log_at_kill.splitlines())
    assert finished >= 1 and shard["quality_cached"].tolist()[:finished] == [True] * finished


def evaluations(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / f"results/{NET}/summary/evaluations.csv")


def test_accuracy_and_size_equal_the_local_smoke_run(slurm_run, smoke_run):
    on_slurm, local = evaluations(slurm_run["workdir"]), evaluations(smoke_run)
    local = local[(local["space"] == "joint") & (local["algorithm"] == "linas")]
    assert set(on_slurm["algorithm"]) == {"linas"} and set(on_slurm["space"]) == {"joint"}
    columns = ["candidate", "genome", "accuracy", "size_bytes"]
    # the size search does not depend on latency: the whole run is the same, the killed shard included
    size = [
        frame[frame["objective"] == "size"].sort_values(["iteration", "candidate"])
        for frame in (on_slurm, local)
    ]
    pd.testing.assert_frame_equal(
        size[0][["iteration", *columns]].reset_index(drop=True),
        size[1][["iteration", *columns]].reset_index(drop=True),
        check_exact=True,
    )
    # the latency search is steered by measured latency: the seeded first iteration is the same, and every
    # network both runs evaluated has the same accuracy and size
    first = [
        frame[(frame["objective"] == "latency") & (frame["iteration"] == 0)] for frame in (on_slurm, local)
    ]
    assert first[0][columns].reset_index(drop=True).equals(first[1][columns].reset_index(drop=True))
    both = on_slurm.merge(local, on="genome", suffixes=("_slurm", "_local"))
    assert len(both) >= len(size[0]) + len(first[0])
    assert (both["accuracy_slurm"] == both["accuracy_local"]).all()
    assert (both["size_bytes_slurm"] == both["size_bytes_local"]).all()
    baselines = [
        pd.read_csv(w / f"results/{NET}/summary/baselines.csv") for w in (slurm_run["workdir"], smoke_run)
    ]
    quality = [b[b["host"].isna()].set_index("baseline")[["accuracy", "size_bytes"]] for b in baselines]
    pd.testing.assert_frame_equal(quality[0], quality[1], check_exact=True)


def test_two_process_training_runs_as_one_slurm_job(tmp_path):
    """config/smoke-slurm.yaml's super-network trained data-parallel (`training.processes: 2`): one SLURM job
    whose torchrun starts two gloo processes on its node, writing one checkpoint (tests/test_distributed.py
    shows such a run follows the single-process loss curve; this shows it runs as a cluster job)."""
    workdir = copy_workflow(tmp_path / "ddp")
    config = yaml.safe_load((ROOT / CONFIG).read_text())
    config["supernets"][NET]["training"]["processes"] = 2
    (workdir / "config" / "ddp.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.time()
    run = start_snakemake(
        workdir,
        f"results/{NET}/supernet.json",
        "--profile",
        "profiles/slurm",
        "--workflow-profile",
        "none",
        "--configfile",
        "config/ddp.yaml",
        env=slurm_env(),
        timeout=900,
    )
    seconds = finish(run, workdir, "two-process SLURM training", started)
    print(f"two-process training on SLURM {seconds:.0f} s")

    training = [job for job in slurm_jobs(workdir) if job.rule == "train_supernet"]
    assert [job.state for job in training] == ["COMPLETED"], training
    log = (workdir / f"results/logs/{NET}/train_supernet.log").read_text()
    assert "training in 2 processes" in log, log[-3000:]
    checkpoints = sorted((workdir / f"results/{NET}/checkpoints/supernet").glob("epoch-*"))
    assert [p.name for p in checkpoints] == ["epoch-0001"]
    state = json.loads((checkpoints[0] / "state.json").read_text())
    assert state["settings"]["processes"] == 2
    epochs = json.loads((workdir / f"results/{NET}/supernet.json").read_text())["epochs"]
    losses = epochs[0]["step_losses"]
    assert len(losses) == config["supernets"][NET]["training"]["max_steps_per_epoch"]
    assert all(0 < loss < 10 for loss in losses), losses
