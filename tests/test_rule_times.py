"""The rule-times benchmark: Snakemake benchmark files grouped per rule and per network and rule."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rule_times.py"
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


@pytest.fixture(scope="module")
def rule_times():
    spec = importlib.util.spec_from_file_location("rule_times", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_benchmark(root: Path, name: str, seconds: float, rss: float) -> None:
    path = root / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t0\t0\t0\t0\t0\t50\t{seconds / 2}\n")


@pytest.fixture
def benchmarks(tmp_path):
    root = tmp_path / "benchmarks"
    for name, seconds, rss in [
        ("data/sentences", 4.0, 300),
        ("bert/finetune_teacher", 200.0, 1300),
        ("bert/search/joint-size/linas/seed0/it0/propose", 3.0, 170),
        ("bert/search/joint-size/linas/seed0/it0/shard0", 30.0, 1100),
        ("bert/search/joint-size/linas/seed0/it1/shard0", 50.0, 1200),
        ("bert/search/joint-latency/linas/seed0/it1/latency-local", 60.0, 1150),
        ("bert/baseline_latency_local_int8", 25.0, 800),
        ("bert/baseline_fp32", 15.0, 900),
        ("bert/hosts/latency-local", 2.0, 350),
        ("vit/search/joint-size/linas/seed0/it0/shard0", 10.0, 500),
    ]:
        write_benchmark(root, name, seconds, rss)
    return root


def test_files_are_attributed_to_their_rules(rule_times, benchmarks):
    table = rule_times.rule_times(benchmarks).set_index("rule")
    assert table.loc["evaluate_shard", "jobs"] == 3
    assert table.loc["evaluate_shard", "total_s"] == pytest.approx(90.0)
    assert table.loc["evaluate_shard", "max_s"] == pytest.approx(50.0)
    assert table.loc["evaluate_shard", "peak_rss_mb"] == pytest.approx(1200)
    expected = {"prepare_data", "finetune_teacher", "propose", "evaluate_shard", "measure_latency"}
    assert expected | {"baseline_latency", "baseline_quality", "remeasure_front_latency"} == set(table.index)
    assert table["share"].sum() == pytest.approx(1.0)
    # the largest rule first
    assert table.index[0] == "finetune_teacher"


def test_per_network_groups_by_network_then_rule(rule_times, benchmarks):
    table = rule_times.rule_times(benchmarks, per_network=True)
    assert list(table.columns[:2]) == ["network", "rule"]
    # networks ordered by their total time, so bert's rows come before vit's and data's
    assert list(dict.fromkeys(table["network"])) == ["bert", "vit", "data"]
    shards = table[table["rule"] == "evaluate_shard"].set_index("network")["total_s"]
    assert shards.to_dict() == pytest.approx({"bert": 80.0, "vit": 10.0})


def test_main_writes_the_table_it_prints(rule_times, benchmarks, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setattr(
        "sys.argv", ["rule_times.py", "--results", str(benchmarks.parent), "--out", str(out), "--per-network"]
    )
    rule_times.main()
    frame = pd.read_csv(out / "rule_times_per_network.csv")
    assert frame["total_s"].sum() == pytest.approx(399.0)
    assert "summed job wall time: 399 s" in capsys.readouterr().out


def test_no_benchmark_files_is_a_clear_error(rule_times, tmp_path):
    with pytest.raises(SystemExit, match="no benchmark files"):
        rule_times.rule_times(tmp_path)
