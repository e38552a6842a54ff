"""`python -m simqnas`: the space-size command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simqnas.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"
PAPER_SPACES = ROOT / "config" / "spaces" / "paper"
MINILM = ROOT / "config" / "spaces" / "minilm.yaml"


def test_space_size_of_a_workflow_config(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # a workflow config's paths are relative to the working directory
    assert main(["space-size", str(PAPER), "--supernet", "bert"]) == 0
    sizes = json.loads(capsys.readouterr().out)
    assert list(sizes) == ["arch", "quant", "joint", "active_arch", "active_quant", "active_joint"]
    assert sizes["arch"] == 7 * 4**12 * 3**12
    assert sizes["quant"] == 2**74
    assert sizes["joint"] == 7 * 4**12 * 3**12 * 2**74  # exact beyond float precision
    assert sizes["active_arch"] == sum(12**n for n in range(6, 13))
    assert sizes["active_quant"] == 2**74


def test_space_size_of_a_space_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space-size", str(MINILM)]) == 0
    sizes = json.loads(capsys.readouterr().out)
    assert sizes["arch"] == 4 * 4**6 * 3**6 and sizes["quant"] == 2**38


def test_invalid_file_exits_2_with_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "space.yaml"
    bad.write_text("elastic:\n  num_heads: {count: 12, choices: []}\n")
    assert main(["space-size", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "space.elastic.num_heads.choices: must be a non-empty list" in err
    assert str(bad) in err


def test_workflow_config_needs_a_supernet_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    space = "{elastic: {heads: {count: 2, choices: [4, 8]}}}"
    config.write_text(f"supernets:\n  small: {{space: {space}}}\n  large: {{space: {space}}}\n")
    assert main(["space-size", str(config)]) == 2
    assert "supernets (small, large); name one of them" in capsys.readouterr().err
    assert main(["space-size", str(config), "--supernet", "gpt"]) == 2
    assert "supernets.gpt: no such super-network" in capsys.readouterr().err


def test_module_entry_point() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "simqnas", "space-size", str(PAPER_SPACES / "resnet.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["arch"] == 3**29
    run = subprocess.run(
        [sys.executable, "-m", "simqnas", "space-size", str(ROOT / "no-such.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2 and "no-such.yaml: cannot read" in run.stderr and not run.stdout
