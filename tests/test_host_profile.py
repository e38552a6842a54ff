"""Host profiles: the machine check before a latency job measures, where a latency was measured, pinning."""

from __future__ import annotations

import os

import pytest

from simqnas.latency import HostProfile, WrongHostError, machine_columns


def test_host_profile_refuses_the_wrong_cpu():
    host = HostProfile.from_config(
        {"name": "xeon8480", "threads": 2, "warmup": 1, "runs": 3, "trim": 0.0, "cpu_model": "8480"}
    )
    with pytest.raises(WrongHostError, match=r"xeon8480.*8480.*lscpu says 'AMD EPYC 9654'"):
        host.check_machine({"cpu_model": "AMD EPYC 9654", "hostname": "node1"})
    host.check_machine({"cpu_model": "Intel(R) Xeon(R) Platinum 8480+", "hostname": "node2"})


def slurm_machine(node: str | None, features: list[str] | None, cpu: str = "Intel(R) Xeon(R) 8380") -> dict:
    """A host_info() record as a job on SLURM node `node` writes it (None: outside SLURM)."""
    slurm = None
    if node is not None:
        error = None if features is not None else "`scontrol show node -o x` failed: timed out"
        slurm = {"node": node, "job_id": "7", "features": features, "error": error}
    return {"hostname": "submit-host", "cpu_model": cpu, "slurm": slurm}


XEON8380 = {"name": "xeon8380", "feature": "xeon8380", "threads": 2, "warmup": 1, "runs": 3, "trim": 0.0}


def test_host_profile_accepts_a_node_with_its_feature():
    HostProfile.from_config(XEON8380).check_machine(slurm_machine("node8380", ["fast", "xeon8380"]))


@pytest.mark.parametrize(
    ("machine", "message"),
    [
        (
            slurm_machine("node8480", ["xeon8480"]),
            r"^host xeon8380: .* node8480: it has features \['xeon8480'\], not 'xeon8380'$",
        ),
        (slurm_machine("node0", []), r"node node0: it has features \[\], not 'xeon8380'"),
        (slurm_machine("node8380", None), r"node node8380: cannot read its features .*timed out"),
        (slurm_machine(None, None), r"submit-host: .*does not run under SLURM"),
    ],
    ids=["other feature", "no features", "features unknown", "outside SLURM"],
)
def test_host_profile_refuses_a_node_without_its_feature(machine, message):
    with pytest.raises(WrongHostError, match=message) as refused:
        HostProfile.from_config(XEON8380).check_machine(machine)
    assert "\n" not in str(refused.value)  # one line in the job's log


def test_host_profile_checks_the_cpu_model_on_the_right_node_too():
    host = HostProfile.from_config({**XEON8380, "cpu_model": "8380"})
    host.check_machine(slurm_machine("node8380", ["xeon8380"]))
    with pytest.raises(WrongHostError, match=r"SLURM node node8380: expected a CPU model containing '8380'"):
        host.check_machine(slurm_machine("node8380", ["xeon8380"], cpu="Intel(R) Xeon(R) Platinum 8480+"))


def test_a_latency_job_on_the_wrong_machine_ends_with_the_one_line(monkeypatch):
    monkeypatch.delenv("SLURMD_NODENAME", raising=False)  # this test process does not run under SLURM
    with pytest.raises(SystemExit, match=r"^host xeon8380: .*does not run under SLURM") as ended:
        HostProfile.for_latency_job(XEON8380)
    assert "\n" not in str(ended.value)
    host, machine = HostProfile.for_latency_job({**XEON8380, "feature": None, "pin_threads": False})
    assert host.name == "xeon8380" and machine["cpus"] == sorted(os.sched_getaffinity(0))


def test_local_profile_measures_anywhere():
    local = HostProfile.from_config({"name": "local", "threads": 2, "warmup": 1, "runs": 3, "trim": 0.0})
    local.check_machine(slurm_machine(None, None))
    local.check_machine(slurm_machine("node8480", ["xeon8480"]))


def test_latency_rows_say_where_they_were_measured():
    assert machine_columns(slurm_machine("node8380", ["a", "xeon8380"])) == {
        "cpu_model": "Intel(R) Xeon(R) 8380",
        "node": "node8380",
        "node_features": "a;xeon8380",
    }
    assert machine_columns(slurm_machine(None, None))["node"] == ""


def test_pinning_sets_the_threads_and_the_affinity_it_reports():
    """`pin_threads` does what it says (CPU affinity of the measuring process), in a child process so this
    one keeps its CPUs."""
    import subprocess
    import sys

    code = (
        "import os, torch; from simqnas.latency import pin_process; "
        "cpus = pin_process(1, True); "
        "print(cpus == sorted(os.sched_getaffinity(0)), len(cpus), torch.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "1", "1"]


def test_latency_keys_cover_the_settings_and_the_cpu():
    host = HostProfile.from_config({"name": "local", "threads": 2, "warmup": 1, "runs": 3, "trim": 0.0})
    fields = host.key_fields("AMD EPYC 9654")
    assert fields["cpu_model"] == "AMD EPYC 9654"
    assert {"threads", "batch_size", "pin_threads", "warmup", "runs", "trim"} <= set(fields)
