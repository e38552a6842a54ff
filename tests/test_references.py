"""Fixed reference networks (`references:`, the paper's ResNet50/101/152 against OFA-ResNet): their rows in a
network's baselines table, the ResNet claims measured against them, the combined headline table, and the
figures that mark them. Synthetic JSON and tables only, no workflow run."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from simqnas.headline import (
    COMBINED_COLUMNS,
    PAPER_CLAIMS,
    combined_headline,
    headline_markdown,
    headline_table,
    read_headline,
)
from simqnas.plots import accuracy_vs_cost, network_figures, search_progression
from simqnas.summary import (
    add_normalized_latency,
    baselines_table,
    own_baselines,
    reference_baselines,
    reference_files,
    reference_names,
)

#: the searched network's own baselines: (accuracy, size bytes) and INT8/FP32 latency (ms) on host "local"
OWN = {"fp32": (0.81, 40e6), "int8": (0.80, 10e6)}
OWN_LATENCY = {"fp32": 25.0, "int8": 10.0}
#: reference -> (FP32 quality, INT8 quality, INT8 latency in ms on "local"); normalized by the network's own
#: INT8 latency (10 ms): 1.15, 3.488, 5.0
REFERENCES = {
    "r50": ((0.80, 40e6), (0.79, 10e6), 11.5),
    "r101": ((0.82, 97.92e6), (0.815, 24.48e6), 34.88),
    "r152": ((0.905, 120e6), (0.90, 30e6), 50.0),
}
NAMES = list(REFERENCES)
#: (accuracy, size MB, normalized latency) of a joint-search front
FRONT = [(0.78, 4.0, 0.4), (0.80, 5.0, 0.5), (0.82, 8.0, 0.8), (0.83, 12.5, 1.25)]


def _json(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def _quality(folder: Path, qualities: dict[str, tuple[float, float]]) -> dict[str, Path]:
    return {
        precision: _json(folder / f"{precision}.json", {"accuracy": accuracy, "size_bytes": size})
        for precision, (accuracy, size) in qualities.items()
    }


@pytest.fixture
def files(tmp_path: Path) -> tuple[dict, dict, dict]:
    """The baseline JSON files a summary reads: the network's own and its three references'."""
    quality = _quality(tmp_path / "resnet", OWN)
    latency = {
        ("local", precision): _json(
            tmp_path / "resnet" / "latency-local" / f"{precision}.json", {"latency_ms": ms}
        )
        for precision, ms in OWN_LATENCY.items()
    }
    references = {
        name: (
            _quality(tmp_path / name, {"fp32": fp32, "int8": int8}),
            {("local", "int8"): _json(tmp_path / name / "latency-local" / "int8.json", {"latency_ms": ms})},
        )
        for name, (fp32, int8, ms) in REFERENCES.items()
    }
    return quality, latency, references


def _as_written(table: pd.DataFrame, tmp_path: Path, name: str = "baselines.csv") -> pd.DataFrame:
    """What the downstream rules read: the table through its CSV."""
    path = tmp_path / name
    table.to_csv(path, index=False)
    return pd.read_csv(path)


@pytest.fixture
def baselines(files, tmp_path: Path) -> pd.DataFrame:
    quality, latency, references = files
    return _as_written(baselines_table(quality, latency, network="resnet", references=references), tmp_path)


@pytest.fixture
def own_only(files, tmp_path: Path) -> pd.DataFrame:
    quality, latency, _ = files
    return _as_written(baselines_table(quality, latency, network="resnet"), tmp_path, "own.csv")


def front_evaluations(algorithms: tuple[str, ...] = ("linas",)) -> pd.DataFrame:
    rows = []
    for algorithm in algorithms:
        for i, (accuracy, size, latency) in enumerate(FRONT):
            common = {
                "space": "joint",
                "algorithm": algorithm,
                "seed": 0,
                "evaluation": i,
                "accuracy": accuracy,
            }
            rows.append(
                {**common, "objective": "size", "host": None, "size_mb": size, "normalized_latency": np.nan}
            )
            rows.append(
                {
                    **common,
                    "objective": "latency",
                    "host": "local",
                    "size_mb": size,
                    "normalized_latency": latency,
                }
            )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ the baselines table


def test_baselines_table_holds_each_reference_normalized_by_the_networks_own_int8(baselines):
    assert baselines["network"].tolist() == ["resnet"] * 4 + [name for name in NAMES for _ in range(3)]
    assert baselines["reference"].tolist() == [False] * 4 + [True] * 9
    assert reference_names(baselines) == NAMES
    own = own_baselines(baselines)
    assert set(own["network"]) == {"resnet"} and len(own) == 4
    local = own[own["host"] == "local"].set_index("baseline")["normalized_latency"]
    assert local["int8"] == pytest.approx(1.0) and local["fp32"] == pytest.approx(2.5)
    for name, expected in (("r50", 1.15), ("r101", 3.488), ("r152", 5.0)):
        rows = reference_baselines(baselines, name)
        assert sorted(rows["baseline"]) == ["fp32", "int8", "int8"], name
        latency = rows[rows["host"] == "local"]
        assert latency["baseline"].tolist() == ["int8"], name  # references: INT8 latency only
        assert latency["normalized_latency"].iloc[0] == pytest.approx(expected), name
        quality = rows[rows["host"].isna()].set_index("baseline")
        assert quality.loc["int8", "size_mb"] == pytest.approx(REFERENCES[name][1][1] / 1e6), name
        assert quality["normalized_latency"].isna().all(), name


def test_a_network_without_references_has_only_its_own_rows(own_only):
    assert own_only["network"].tolist() == ["resnet"] * 4
    assert not own_only["reference"].any()
    assert reference_names(own_only) == []
    assert reference_baselines(own_only, "r50").empty
    # a table from before the `network` and `reference` columns is all the network's own
    legacy = own_only.drop(columns=["network", "reference"])
    assert len(own_baselines(legacy)) == 4 and reference_names(legacy) == []


def test_evaluations_are_normalized_by_the_networks_own_int8_not_a_references(baselines):
    evaluations = pd.DataFrame({"host": ["local", None], "latency_ms": [5.0, np.nan]})
    normalized = add_normalized_latency(evaluations, baselines)["normalized_latency"]
    assert normalized.iloc[0] == pytest.approx(0.5) and np.isnan(normalized.iloc[1])


# ------------------------------------------------------------------------------ the ResNet claims


def test_resnet_claims_compare_the_front_with_each_reference_int8(baselines):
    table = headline_table("resnet", front_evaluations(), baselines, margin=0.0, references=NAMES)
    assert table["paper"].tolist() == [claim.paper for claim in PAPER_CLAIMS["resnet"]]
    assert table["paper"].tolist() == ["2x", "3.06x", "3.44x", "2.30x", "4.36x", "4.8x"]
    assert table["objective"].tolist() == ["size"] * 3 + ["latency"] * 3
    assert table["versus"].tolist() == [f"{name} all-INT8" for name in NAMES] * 2
    # size: r50 (0.79, 10 MB) -> the 5 MB point, 2x; r101 (0.815, 24.48 MB) -> the 8 MB point, 3.06x;
    # latency: 1.15 / 0.5 = 2.3x, 3.488 / 0.8 = 4.36x; r152 (0.90) is more accurate than the whole front
    values = table["linas_value"].tolist()
    assert values[0] == pytest.approx(2.0) and values[1] == pytest.approx(3.06)
    assert values[3] == pytest.approx(2.3) and values[4] == pytest.approx(4.36)
    assert pd.isna(values[2]) and pd.isna(values[5])
    assert table["linas"].tolist() == ["2.00x", "3.06x", "n/a", "2.30x", "4.36x", "n/a"]


def test_the_iso_accuracy_margin_applies_to_the_references_accuracy(baselines):
    table = headline_table("resnet", front_evaluations(), baselines, margin=0.11, references=NAMES)
    # r152 at 0.90 - 0.11 = 0.79: the 5 MB / 0.5 point qualifies, 30 MB / 5 MB and 5.0 / 0.5
    assert table["linas_value"].iloc[2] == pytest.approx(6.0)
    assert table["linas_value"].iloc[5] == pytest.approx(10.0)


def test_a_reference_the_config_does_not_name_is_not_available(baselines):
    table = headline_table("resnet", front_evaluations(), baselines, margin=0.0, references=NAMES[:2])
    assert table["linas"].tolist()[2::3] == ["n/a", "n/a"]
    assert table["versus"].tolist()[2] == "(no reference 3 configured)"
    assert table["linas_value"].iloc[0] == pytest.approx(2.0)  # the named ones still compare


def test_a_named_reference_missing_from_the_summary_is_an_error(baselines):
    with pytest.raises(ValueError, match="r34 all-INT8"):
        headline_table("resnet", front_evaluations(), baselines, margin=0.0, references=["r50", "r34"])


@pytest.mark.parametrize("family", ["bert", "vit", "multiway"])
def test_other_families_claims_ignore_reference_rows(family, baselines, own_only):
    evaluations = front_evaluations()
    with_references = headline_table(family, evaluations, baselines, margin=0.0, references=NAMES)
    without = headline_table(family, evaluations, own_only, margin=0.0)
    pd.testing.assert_frame_equal(with_references, without)
    assert set(without["versus"]) == {"all-INT8 super-network"}


# ------------------------------------------------------------------------------ the combined table


def test_combined_table_stacks_every_network_with_its_family(baselines, own_only, tmp_path: Path):
    resnet = headline_table("resnet", front_evaluations(), baselines, margin=0.0, references=NAMES)
    vit = headline_table("vit", front_evaluations(("linas", "nsga2")), own_only, margin=0.0)
    paths = []
    for name, table in (
        ("resnet", resnet),
        ("vit", vit),
        ("mine", headline_table("mine", front_evaluations(), own_only, 0.0)),
    ):
        paths.append(tmp_path / f"{name}_headline.csv")
        table.to_csv(paths[-1], index=False)
    tables = [read_headline(path) for path in paths]
    assert tables[2].empty  # a family without claims
    assert tables[0]["linas"].tolist()[2] == "n/a"  # read back as text, not as missing

    combined = combined_headline(["resnet", "vit", "mine"], ["resnet", "vit", "mine"], tables)
    assert list(combined.columns[: len(COMBINED_COLUMNS) + 2]) == [*COMBINED_COLUMNS, "linas", "nsga2"]
    assert combined["network"].tolist() == ["resnet"] * 6 + ["vit"] * 5
    assert combined["family"].tolist() == ["resnet"] * 6 + ["vit"] * 5
    assert combined["paper"].tolist() == [c.paper for c in PAPER_CLAIMS["resnet"] + PAPER_CLAIMS["vit"]]
    assert combined["nsga2"].iloc[:6].isna().all() and combined["nsga2"].iloc[6:].notna().all()
    assert combined["linas_value"].iloc[0] == pytest.approx(2.0)

    written = _as_written(combined, tmp_path, "headline.csv")
    assert len(written) == 11 and "network" in written
    markdown = headline_markdown(combined, 0.0)
    assert "| resnet " in markdown and "| vit " in markdown and "n/a" in markdown
    assert "linas_value" not in markdown and "iso-accurate when" in markdown


def test_combined_table_of_no_claims_has_its_columns():
    combined = combined_headline(["mine"], ["mine"], [pd.DataFrame()])
    assert combined.empty and list(combined.columns) == COMBINED_COLUMNS


# ------------------------------------------------------------------------------ the figures


def _labels(figure: plt.Figure) -> list[str]:
    labels = figure.axes[0].get_legend_handles_labels()[1]
    plt.close(figure)
    return labels


@pytest.mark.parametrize("objective", ["size", "latency"])
def test_accuracy_vs_cost_marks_each_reference_int8(objective, baselines, own_only):
    labels = _labels(accuracy_vs_cost(front_evaluations(), baselines, objective, "resnet"))
    assert {f"{name} INT8" for name in NAMES} <= set(labels)
    assert "all-INT8 super-network (baseline)" in labels
    assert not any(label.endswith(" FP32") for label in labels)
    plain = _labels(accuracy_vs_cost(front_evaluations(), own_only, objective, "resnet"))
    assert set(labels) - set(plain) == {f"{name} INT8" for name in NAMES}


def test_search_progression_marks_each_reference_fp32(baselines, own_only):
    labels = _labels(search_progression(front_evaluations(), baselines, "size", "resnet"))
    assert {f"{name} FP32" for name in NAMES} <= set(labels) and "FP32 super-network" in labels
    assert not any(label.endswith(" INT8") for label in labels)
    plain = _labels(search_progression(front_evaluations(), own_only, "size", "resnet"))
    assert plain == ["FP32 super-network"]
    # latency: the FP32 baseline measured on the search's host; references are timed all-INT8 only
    assert _labels(search_progression(front_evaluations(), baselines, "latency", "resnet")) == [
        "FP32 super-network"
    ]


def test_network_figures_are_written_with_references(baselines, tmp_path: Path):
    hypervolume = pd.DataFrame(
        [
            {
                "space": "joint",
                "objective": objective,
                "algorithm": "linas",
                "seed": 0,
                "evaluations": i + 1,
                "hypervolume": 0.1 * (i + 1),
            }
            for objective in ("size", "latency")
            for i in range(len(FRONT))
        ]
    )
    written = network_figures("resnet", front_evaluations(), baselines, hypervolume, tmp_path / "resnet")
    names = {path.name for path in written}
    for figure in ("fig1_accuracy_vs_size", "fig1_accuracy_vs_latency", "fig2_progression_size"):
        assert {f"{figure}.png", f"{figure}.pdf"} <= names, figure
        assert (tmp_path / "resnet" / f"{figure}.png").stat().st_size > 10_000, figure


def test_reference_files_group_the_rule_inputs_per_reference():
    described = [["resnet50", None, "fp32"], ["resnet50", None, "int8"], ["resnet50", "local", "int8"]]
    paths = ["a/fp32.json", "a/int8.json", "a/latency-local/int8.json"]
    assert reference_files(described, paths) == {
        "resnet50": ({"fp32": "a/fp32.json", "int8": "a/int8.json"}, {("local", "int8"): paths[2]})
    }
