"""simqnas.tables and the table_search_space rule script: the paper's Tables 1-3."""

from __future__ import annotations

import runpy
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from simqnas.space import SearchSpace
from simqnas.tables import (
    PAPER_TABLE1,
    choices_cell,
    power_of_ten,
    table1,
    table1_markdown,
    table23,
    table23_markdown,
    table_models,
)

ROOT = Path(__file__).resolve().parents[1]
PAPER_DIR = ROOT / "config" / "spaces" / "paper"
PAPER = [PAPER_DIR / f"{net}.yaml" for net in ("bert", "vit", "beit3", "resnet")]
MINILM = ROOT / "config" / "spaces" / "minilm.yaml"

# the paper's Tables 2 and 3, cell for cell
PAPER_TABLE23 = {
    "beit3": {
        "num_layers": "1x[11, 12]",
        "num_heads": "12x[6, 8, 10, 12]",
        "ffn_size": "12x[2048, 2560, 3072]",
    },
    "vit": {
        "num_layers": "1x[10, 11, 12]",
        "num_heads": "12x[6, 8, 10, 12]",
        "ffn_size": "12x[1024, 2048, 3072]",
    },
    "bert": {
        "num_layers": "1x[6, 7, 8, 9, 10, 11, 12]",
        "num_heads": "12x[6, 8, 10, 12]",
        "ffn_size": "12x[1024, 2048, 3072]",
    },
    "resnet": {
        "depth": "5x[0, 1, 2]",
        "expand_ratio": "18x[0.2, 0.25, 0.35]",
        "width_mult": "6x[0.65, 0.8, 1.0]",
    },
}


@pytest.fixture(scope="module")
def models() -> list:
    return table_models(PAPER, {"bert": MINILM})


def test_power_of_ten_is_exact() -> None:
    assert power_of_ten(1) == 0
    assert power_of_ten(10**50) == 50
    assert power_of_ten(10**50 - 1) == 49  # float log10 says 50.0 here
    assert power_of_ten(3**29 * 2**122) == 50
    with pytest.raises(ValueError, match="positive integer, got 0"):
        power_of_ten(0)


def test_table1_values(models: list) -> None:
    df = table1(models)
    assert list(df["label"].unique()) == ["BEiT-3", "ViT", "BERT", "OFA ResNet50", "bert (minilm.yaml)"]
    powers = df.pivot(index="label", columns="quantity", values="power_of_ten")
    paper = df.pivot(index="label", columns="quantity", values="paper_power_of_ten")
    ours = {
        r.label: tuple(int(powers.loc[r.label, q]) for q in ("arch", "quant", "joint"))
        for r in PAPER_TABLE1.values()
    }
    assert ours == {
        "BEiT-3": (13, 21, 34),
        "ViT": (13, 22, 35),
        "BERT": (13, 22, 36),
        "OFA ResNet50": (13, 18, 32),
    }
    assert paper.loc["OFA ResNet50", "joint"] == 50 and paper.loc["BERT", "quant"] == 23
    assert df[df["source"] == str(MINILM)]["paper_power_of_ten"].isna().all()
    bert = df[(df["label"] == "BERT")].set_index("quantity")
    assert bert.loc["arch", "size"] == 7 * 4**12 * 3**12
    assert bert.loc["joint", "size"] == 7 * 4**12 * 3**12 * 2**74
    assert type(bert.loc["joint", "size"]) is int
    assert bert.loc["quant", "genes"] == 74


def test_table1_markdown_shows_differences_with_footnotes(models: list) -> None:
    md = table1_markdown(table1(models))
    assert "| 10^22 (paper: 10^23)[^bert]" in md
    assert "10^18 (paper: 10^37)[^resnet]" in md and "10^32 (paper: 10^50)[^resnet]" in md
    assert md.count("[^bert]:") == 1 and md.count("[^resnet]:") == 1
    assert "[^vit]" not in md and "[^beit3]" not in md  # both match the paper
    assert "[^resnet]: Ours: S^Q = 4.6e18 from 62 genes; S^J = 3.2e32 from 91 genes." in md
    assert str(7 * 4**12 * 3**12 * 2**74) in md  # exact sizes, not re-formatted by tabulate


def test_table1_footnote_for_an_unexplained_difference(models: list) -> None:
    vit = next(m for m in models if m.name == "vit")
    renamed = replace(vit, space=vit.space.with_layer_names([f"l{i}" for i in range(74)]))
    assert "[^vit]" not in table1_markdown(table1([renamed]))
    d = vit.space.to_dict()
    d["quantization"]["layers"] = 80
    changed = replace(vit, space=SearchSpace.from_dict(d))
    md = table1_markdown(table1([changed]))
    assert "10^24 (paper: 10^22)[^vit]" in md
    assert "[^vit]: Ours: S^Q = 1.2e24 from 80 genes; S^J = 3.2e37 from 105 genes. The paper does not" in md


def test_tables_2_and_3_match_the_paper(models: list) -> None:
    df = table23(models)
    for model, cells in PAPER_TABLE23.items():
        source = str(PAPER_DIR / f"{model}.yaml")
        rows = df[(df["model"] == model) & (df["source"] == source)].set_index("parameter")
        assert {p: rows.loc[p, "cell"] for p in cells} == cells
    assert set(df[df["model"] == "resnet"]["table"]) == {"Table 3: OFA ResNet50 super-network"}
    policy = df[(df["label"] == "BEiT-3") & (df["parameter"] == "quantization")].iloc[0]
    assert (policy["cell"], policy["choices"]) == ("72x[int8, fp32]", '["int8", "fp32"]')


def test_table23_markdown(models: list) -> None:
    md = table23_markdown(table23(models))
    table2 = md.split("## Table 2")[1].split("## Table 3")[0]
    assert "| L^A " in table2 and "| D_ffn^A " in table2
    order = [table2.index(f"| {label} ") for label in ("BEiT-3", "ViT", "BERT", "bert (minilm.yaml)")]
    assert order == sorted(order)
    assert "| 1x[3, 4, 5, 6] " in table2 and "| 38x[int8, fp32] " in table2
    table3 = md.split("## Table 3")[1]
    row = "| OFA ResNet50 | 5x[0, 1, 2] | 18x[0.2, 0.25, 0.35] | 6x[0.65, 0.8, 1.0] | 62x[int8, fp32] |"
    assert row in " ".join(table3.split())  # tabulate pads cells


def test_other_parameter_sets_get_their_own_table() -> None:
    space = SearchSpace.from_dict({"elastic": {"kernel": {"count": 2, "choices": [3, 5]}}})
    bert = next(m for m in table_models(PAPER, {}) if m.name == "bert")
    md = table23_markdown(table23([bert, replace(bert, name="k", label="K", space=space, paper=None)]))
    assert "## Elastic parameters: kernel" in md and "| 2x[3, 5] " in md and "| none " in md
    assert choices_cell(1, (0.65, 1.0)) == "1x[0.65, 1.0]"


def test_rule_script_writes_all_tables(tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    out = {
        "table1_csv": tables / "t1.csv",
        "table1_md": tables / "t1.md",
        "table23_csv": tables / "t23.csv",
        "table23_md": tables / "t23.md",
    }
    smk = SimpleNamespace(
        input=SimpleNamespace(paper_spaces=[str(p) for p in PAPER]),
        params=SimpleNamespace(extra_spaces={"bert": str(MINILM)}),
        output=SimpleNamespace(**{k: str(v) for k, v in out.items()}),
        log=[str(tmp_path / "log.txt")],
    )
    runpy.run_path(str(ROOT / "scripts" / "table_search_space.py"), init_globals={"snakemake": smk})
    t1 = pd.read_csv(out["table1_csv"], dtype={"size": str, "active_size": str})
    bert = t1[(t1["label"] == "BERT") & (t1["quantity"] == "joint")].iloc[0]
    assert int(bert["size"]) == 7 * 4**12 * 3**12 * 2**74
    assert "bert (minilm.yaml)" in set(t1["label"])
    assert "(paper: 10^23)" in out["table1_md"].read_text()
    assert "18x[0.2, 0.25, 0.35]" in out["table23_md"].read_text()
    assert len(pd.read_csv(out["table23_csv"])) == 4 * 4 + 4  # 3 elastic + 1 policy row per model
    assert not list(tables.glob(".*.tmp"))  # atomic writes leave no temporaries
