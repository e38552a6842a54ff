"""Helpers for tests that run the workflow on a real SLURM cluster (CI: `.ci/slurm/up.sh`).

`slurm_jobs(workdir)` answers "which SLURM job ran which Snakemake job, on which node, asked for which
feature" for a Snakemake run directory, from Snakemake's own log (rule, wildcards, resources, SLURM job id)
joined with SLURM's records: `scontrol show job -o` (requested features, node list, state; kept for
MinJobAge after the job ends), the job-completion log (`JobCompType=jobcomp/filetxt`, kept for the whole
life of the cluster) and `scontrol show node -o` (each node's features). `constraint_violations(jobs)` then
lists every job with a constraint that did not run on a node carrying that feature.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


def slurm_env() -> dict[str, str]:
    """The environment for running Snakemake against the cluster.

    `.ci/slurm/up.sh` keeps its slurm.conf in a private directory (SLURM_CONF) and puts an `srun` wrapper in
    `<dir>/bin`: inside a job, the SLURM executor's job step drops SLURM_CONF before calling srun, and the
    wrapper restores it. Putting `<dir>/bin` first on PATH here makes a test work even when only SLURM_CONF
    was exported.
    """
    env = dict(os.environ)
    conf = env.get("SLURM_CONF")
    if conf:
        wrapper_dir = Path(conf).resolve().parent.parent / "bin"
        if (wrapper_dir / "srun").exists() and str(wrapper_dir) not in env.get("PATH", "").split(os.pathsep):
            env["PATH"] = f"{wrapper_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list[str], timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=slurm_env())


def slurm_unavailable_reason() -> str | None:
    """None when a SLURM cluster answers, else why not (for `pytest.skip`); fast when SLURM is absent."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM client commands (sinfo, sbatch) not installed; CI runs `bash .ci/slurm/up.sh` first"
    if not os.environ.get("SLURM_CONF") and not DEFAULT_CONF.exists():
        return (
            "SLURM is not up: SLURM_CONF is unset and there is no /etc/slurm/slurm.conf; run "
            "`bash .ci/slurm/up.sh` (as root) and `source /run/simqnas-slurm/env.sh`"
        )
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).exists():
        return f"SLURM is not up: SLURM_CONF={conf} does not exist (.ci/slurm/down.sh removes it)"
    try:
        out = _run(["sinfo", "-h", "-N", "-o", "%N %t"], timeout=15)
    except subprocess.TimeoutExpired:
        return "SLURM is not up: `sinfo` timed out (slurmctld not running?)"
    if out.returncode != 0:
        return f"SLURM is not up: `sinfo` failed: {out.stderr.strip()[:300]}"
    states = [line.split()[-1].rstrip("*~#") for line in out.stdout.splitlines() if line.strip()]
    if not any(state in {"idle", "mix", "alloc"} for state in states):
        return f"SLURM has no usable node: {out.stdout.strip()[:300]}"
    return None


def _key_values(text: str) -> dict[str, str]:
    """`A=1 B=x y=z` from `scontrol -o` lines (values do not contain spaces for the keys we read)."""
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", text))


def node_features() -> dict[str, set[str]]:
    """Node name -> its features (`AvailableFeatures`), from `scontrol show node -o`."""
    out = _run(["scontrol", "show", "node", "-o"])
    out.check_returncode()
    nodes = {}
    for line in out.stdout.splitlines():
        kv = _key_values(line)
        if "NodeName" in kv:
            feats = kv.get("AvailableFeatures", "")
            nodes[kv["NodeName"]] = {f for f in feats.split(",") if f and f != "(null)"}
    return nodes


def expand_nodelist(nodelist: str) -> list[str]:
    """`node[1-2],other` -> names, via `scontrol show hostnames`."""
    if not nodelist or nodelist in {"(null)", "None"}:
        return []
    out = _run(["scontrol", "show", "hostnames", nodelist])
    return out.stdout.split() if out.returncode == 0 else [nodelist]


def _jobcomp_path() -> Path | None:
    out = _run(["scontrol", "show", "config"])
    if out.returncode != 0:
        return None
    conf = {}
    for line in out.stdout.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            conf[key.strip()] = value.strip()
    if conf.get("JobCompType") != "jobcomp/filetxt" or not conf.get("JobCompLoc"):
        return None
    return Path(conf["JobCompLoc"])


def slurm_job_records(job_ids: list[str] | None = None) -> dict[str, dict[str, str]]:
    """SLURM job id -> SLURM's record (keys as SLURM writes them: NodeList, JobState, Features, ...).

    The job-completion log gives every finished job for the cluster's life; `scontrol show job -o` adds the
    requested `Features` (and `Comment`, `ExitCode`) for jobs still known to slurmctld (MinJobAge).
    """
    records: dict[str, dict[str, str]] = {}
    path = _jobcomp_path()
    if path is not None and path.exists():
        for line in path.read_text().splitlines():
            kv = _key_values(line)
            if "JobId" in kv:
                records[kv["JobId"]] = kv  # a requeued job's later line wins
    out = _run(["scontrol", "show", "job", "-o"])
    if out.returncode == 0:
        for line in out.stdout.splitlines():
            kv = _key_values(line)
            if "JobId" in kv:
                records.setdefault(kv["JobId"], {}).update(kv)
    if job_ids is not None:
        wanted = set(job_ids)
        records = {k: v for k, v in records.items() if k in wanted}
    return records


@dataclass
class SlurmJob:
    """One SLURM submission of one Snakemake job (a retried job has one per attempt)."""

    slurm_id: str
    rule: str
    snakemake_jobid: int
    wildcards: dict[str, str] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)
    slurm_log: str = ""
    state: str | None = None  # SLURM's JobState (COMPLETED, FAILED, ...); None if SLURM forgot the job
    nodes: list[str] = field(default_factory=list)  # where it ran, per SLURM
    requested_features: str | None = None  # SLURM's `Features` (the -C request); None once aged out
    node_features: set[str] = field(default_factory=set)  # features of the node(s) it ran on

    @property
    def constraint(self) -> str:
        """The `constraint` resource Snakemake submitted with (`""` when none)."""
        return self.resources.get("constraint", "")


_RULE = re.compile(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):\s*$")
_FIELD = re.compile(r"^\s+(jobid|wildcards|resources): (.*)$")
_SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.*)\)\.")


def _parse_pairs(text: str) -> dict[str, str]:
    """`a=1, b=x, c=` (Snakemake's wildcards/resources lines) -> dict."""
    pairs = {}
    for m in re.finditer(r"(\w+)=(.*?)(?=, \w+=|$)", text.strip()):
        pairs[m.group(1)] = m.group(2)
    return pairs


def snakemake_logs(workdir: str | os.PathLike) -> list[Path]:
    return sorted((Path(workdir) / ".snakemake" / "log").glob("*.snakemake.log"))


def slurm_jobs(workdir: str | os.PathLike, log: str | os.PathLike | None = None) -> list[SlurmJob]:
    """Every SLURM submission of a Snakemake run in `workdir` (default: its latest log; `log` to choose)."""
    if log is None:
        logs = snakemake_logs(workdir)
        if not logs:
            raise FileNotFoundError(f"no Snakemake log under {workdir}/.snakemake/log")
        log = logs[-1]
    jobs_by_id: dict[int, dict] = {}
    current: dict | None = None
    submitted: list[tuple[int, str, str, dict]] = []
    for line in Path(log).read_text().splitlines():
        if m := _RULE.match(line):
            current = {"rule": m.group(1)}
            continue
        if current is not None and (m := _FIELD.match(line)):
            key, value = m.groups()
            if key == "jobid":
                current["jobid"] = int(value)
                jobs_by_id[int(value)] = current
            else:
                current[key] = _parse_pairs(value)
            continue
        if m := _SUBMITTED.search(line):
            jobid = int(m.group(1))
            # the job's block as logged before this submission (a retry logs it again)
            submitted.append((jobid, m.group(2), m.group(3), dict(jobs_by_id.get(jobid, {}))))
    records = slurm_job_records([sid for _, sid, _, _ in submitted])
    features = node_features()
    result = []
    for jobid, slurm_id, slurm_log, info in submitted:
        rec = records.get(slurm_id, {})
        nodes = expand_nodelist(rec.get("NodeList", ""))
        result.append(
            SlurmJob(
                slurm_id=slurm_id,
                rule=info.get("rule", "?"),
                snakemake_jobid=jobid,
                wildcards=info.get("wildcards", {}),
                resources=info.get("resources", {}),
                slurm_log=slurm_log,
                state=rec.get("JobState"),
                nodes=nodes,
                requested_features=None if "Features" not in rec else rec["Features"].replace("(null)", ""),
                node_features=set().union(*(features.get(n, set()) for n in nodes)) if nodes else set(),
            )
        )
    return result


def constraint_violations(jobs: list[SlurmJob]) -> list[str]:
    """One line per job that asked for a feature and did not run on a node that has it (or whose SLURM
    record disagrees with what Snakemake asked for). Empty when all is well."""
    problems = []
    for job in jobs:
        want = job.constraint
        if not want:
            continue
        where = f"{job.rule} {job.wildcards} (SLURM job {job.slurm_id})"
        if not job.nodes:
            problems.append(f"{where}: SLURM has no record of where it ran (state {job.state})")
            continue
        if want not in job.node_features:
            feats = sorted(job.node_features)
            problems.append(f"{where}: asked for {want!r}, ran on {job.nodes} with features {feats}")
        if job.requested_features is not None and job.requested_features != want:
            recorded = job.requested_features
            problems.append(f"{where}: Snakemake asked for {want!r}, SLURM recorded Features={recorded}")
    return problems
