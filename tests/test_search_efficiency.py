"""The search-efficiency benchmark's CLI at a tiny size: it runs, and writes the table it promises."""

import importlib.util
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "search_efficiency.py"


def test_benchmark_writes_hypervolume_after_every_evaluation(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("search_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    arguments = "--budget 20 --population 10 --seeds 1 --problems dtlz2 --inner-evaluations 200"
    module.main([*arguments.split(), "--inner-population", "20", "--out", str(tmp_path)])
    frame = pd.read_csv(tmp_path / "search_efficiency.csv")
    assert list(frame.columns) == ["algorithm", "problem", "seed", "evaluations", "hypervolume"]
    assert len(frame) == 3 * 20
    # iteration 0 is shared: every algorithm has the same hypervolume after the first population
    first = frame[frame["evaluations"] == 10].groupby("seed")["hypervolume"].nunique()
    assert (first == 1).all()
    assert (tmp_path / "normalization.json").exists()
    assert "LINAS reaches NSGA-II's final HV" in capsys.readouterr().out
