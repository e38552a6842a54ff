"""Shared test settings, and the one uninterrupted smoke-workflow run that several modules check."""

from pathlib import Path

import pytest
import torch

from tests.workflow_utils import copy_workflow, snakemake


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: CI has 2 cores, and results must not depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The whole workflow on config/smoke.yaml, uninterrupted (a few minutes on 2 cores); session-scoped so
    tests/test_workflow.py and tests/test_crash_resume.py (its reference) share one run."""
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    result = snakemake(workdir, "results/figures")
    if result.returncode != 0:
        pytest.fail(f"smoke workflow failed:\n{result.stderr[-6000:]}")
    return workdir
