"""The SLURM profile on a real cluster: placement by node feature, refusal of an unknown feature, a job
killed once being retried by Snakemake (`retries` in profiles/slurm), and a latency host profile refusing
a node that lacks its feature.

Skipped unless a SLURM cluster answers. CI brings one up on its own machine first:

    sudo bash .ci/slurm/up.sh && source /run/simqnas-slurm/env.sh
    timeout -k 30 900 .venv/bin/python -m pytest -q tests/test_slurm.py
    sudo bash .ci/slurm/down.sh

The cluster needs nodes carrying at least two different features (up.sh: node8380 with `xeon8380`,
node8480 with `xeon8480`), standing for two host profiles.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.slurm_utils import (
    constraint_violations,
    node_features,
    slurm_env,
    slurm_jobs,
    slurm_unavailable_reason,
)

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "profiles" / "slurm"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

_reason = slurm_unavailable_reason()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


def run_snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    # `timeout -k 30`: a hung status loop ignores SIGTERM's graceful wait. --foreground keeps Snakemake in
    # the caller's process group, so a signal to CI's outer `timeout` reaches it too.
    cmd = ["timeout", "--foreground", "-k", "30", str(timeout), str(SNAKEMAKE), "--profile", str(PROFILE)]
    cmd += ["--directory", str(workdir), "--snakefile", str(workdir / "Snakefile")]
    cmd += ["--slurm-keep-successful-logs"]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=slurm_env(), cwd=workdir, timeout=timeout + 60
    )


@pytest.fixture(scope="module")
def features() -> list[str]:
    feats = sorted(set().union(*node_features().values()))
    if len(feats) < 2:
        pytest.skip(f"the SLURM cluster needs nodes with two different features, has {feats}")
    return feats[:2]


# Two "latency" jobs pinned by feature, and a job whose process is SIGKILLed on its first attempt.
SNAKEFILE = textwrap.dedent(
    """
    FEATURES = config["features"]

    rule all:
        input: expand("out/on_{feature}.txt", feature=FEATURES), "out/flaky.txt"

    rule place:
        output: "out/on_{feature}.txt"
        threads: workflow.cores
        resources:
            constraint=lambda wildcards: wildcards.feature,
            slurm_extra="--exclusive",
            latency_slots=1,
            mem_mb=300,
            runtime=5,
        shell: "echo $SLURMD_NODENAME $SLURM_JOB_ID > {output}"

    rule flaky:
        output: "out/flaky.txt"
        resources: mem_mb=300, runtime=5
        shell:
            "if [ ! -e attempt1.marker ]; then echo $SLURM_JOB_ID > attempt1.marker; kill -9 $$; fi; "
            "echo survived $SLURMD_NODENAME $SLURM_JOB_ID > {output}"
    """
)


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory, features):
    workdir = tmp_path_factory.mktemp("slurm_run")
    (workdir / "Snakefile").write_text(SNAKEFILE)
    proc = run_snakemake(workdir, "--config", f"features={features}")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return workdir, slurm_jobs(workdir)


def test_constraint_places_each_job_on_a_node_with_its_feature(workflow_run, features):
    workdir, jobs = workflow_run
    nodes = node_features()
    placed = [j for j in jobs if j.rule == "place"]
    assert sorted(j.constraint for j in placed) == sorted(features)
    assert constraint_violations(jobs) == []
    for job in placed:
        # SLURM's record and the job's own view agree on the node
        node, slurm_id = (workdir / "out" / f"on_{job.wildcards['feature']}.txt").read_text().split()
        assert slurm_id == job.slurm_id
        assert job.nodes == [node]
        assert job.constraint in nodes[node]
        assert job.requested_features == job.constraint
        assert job.state == "COMPLETED"


def test_killed_job_is_retried_and_its_output_is_right(workflow_run):
    workdir, jobs = workflow_run
    flaky = [j for j in jobs if j.rule == "flaky"]
    assert [j.state for j in flaky] == ["FAILED", "COMPLETED"], flaky
    killed_id = (workdir / "attempt1.marker").read_text().strip()
    assert killed_id == flaky[0].slurm_id
    words = (workdir / "out" / "flaky.txt").read_text().split()
    assert words[0] == "survived" and words[2] == flaky[1].slurm_id


def test_unknown_feature_is_refused(tmp_path):
    out = subprocess.run(
        ["sbatch", "--parsable", "-C", "no_such_feature", "--wrap", "true"],
        capture_output=True,
        text=True,
        env=slurm_env(),
        timeout=30,
    )
    assert out.returncode != 0
    assert "Invalid feature specification" in out.stderr

    # through Snakemake: the submission fails and the run stops with an error naming SLURM's reason
    (tmp_path / "Snakefile").write_text(
        'rule bad:\n    output: "x.txt"\n    resources: constraint="no_such_feature", runtime=1\n'
        '    shell: "touch {output}"\n'
    )
    proc = run_snakemake(tmp_path, "--retries", "0", timeout=120)
    assert proc.returncode != 0
    assert "Invalid feature specification" in proc.stdout + proc.stderr
    assert not (tmp_path / "x.txt").exists()


# What a latency job does first: read the node it runs on (lscpu, SLURMD_NODENAME, `scontrol show node`) and
# let the host profile (feature = argv[1]) accept or refuse it.
CHECK_NODE = """
import json, sys
from simqnas.latency import HostProfile, host_info
print(json.dumps(host_info()["slurm"]))
profile = {"name": "want", "threads": 1, "warmup": 1, "runs": 1, "trim": 0.0, "feature": sys.argv[1]}
HostProfile.for_latency_job(profile)
"""


def check_node(constraint: str, profile_feature: str) -> subprocess.CompletedProcess:
    """The check of a host profile with `profile_feature`, run by SLURM on a node with `constraint`."""
    env = {**slurm_env(), "PYTHONPATH": str(ROOT)}
    command = ["srun", "-C", constraint, "-t", "5", "--mem", "1000", sys.executable, "-c", CHECK_NODE]
    return subprocess.run(
        [*command, profile_feature], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )


def test_latency_host_profile_refuses_a_node_without_its_feature(features):
    mine, other = features
    accepted = check_node(mine, mine)
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    node = json.loads(accepted.stdout.splitlines()[-1])
    assert mine in node["features"] and mine in node_features()[node["node"]]

    refused = check_node(other, mine)
    assert refused.returncode != 0
    node = json.loads(refused.stdout.splitlines()[-1])
    assert mine not in node_features()[node["node"]]
    assert (
        f"host want: refusing to measure on SLURM node {node['node']}: it has features "
        f"{sorted(node_features()[node['node']])}, not '{mine}'"
    ) in refused.stderr
