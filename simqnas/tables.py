"""The paper's search-space tables (Table 1: sizes; Tables 2-3: elastic parameters) from search spaces.

Pure functions: spaces -> tidy DataFrames -> markdown; `write_search_space_tables` writes all four files.
Sizes are exact Python integers; a power of ten is floor(log10(size)), read off the integer's digits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simqnas.io import write_text_atomic
from simqnas.space import QUANTIZATION, SearchSpace, approx_count, count_text, power_of_ten


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 1 (powers of ten)."""

    label: str
    arch: int
    quant: int
    joint: int


#: the paper's Table 1, keyed by this project's super-network names, in the paper's row order
PAPER_TABLE1: dict[str, PaperRow] = {
    "beit3": PaperRow("BEiT-3", 13, 21, 34),
    "vit": PaperRow("ViT", 13, 22, 35),
    "bert": PaperRow("BERT", 13, 23, 36),
    "resnet": PaperRow("OFA ResNet50", 13, 37, 50),
}

#: why our power of ten differs from the paper's, where it does (shown as a footnote only then)
DIFFERENCE_NOTES: dict[str, str] = {
    "bert": (
        "The paper's S^Q = 10^23 and S^J = 10^36 hold together only for exactly 77 binary genes; BERT-base "
        "has 74 quantizable layers (12 encoder layers x 6 Linear, pooler, classifier), the count the "
        "reference tool DyNAS-T uses too. 2^74 gives S^Q = 10^22 and keeps S^J = 10^36."
    ),
    "resnet": (
        "The paper's S^Q counts two binary genes per layer for 61 layers, as the reference tool DyNAS-T "
        "does: a bit width (8 or 32) and a weight mode (symmetric or asymmetric), 2^122 = 5.3e36 (printed "
        "as 10^37, rounded rather than floored), and S^J = 3^29 x 2^122 = 3.6e50. DyNAS-T's 61 layers are "
        "the convolutions, without the classifier. Our policy is INT8 or FP32 per layer, the choice the "
        "paper describes, over all 62 Conv and Linear layers: 2^62."
    ),
}

SIZE_SYMBOLS = {"arch": "S^A", "quant": "S^Q", "joint": "S^J"}

#: the paper's symbols for elastic parameters (Tables 2-3)
PARAMETER_SYMBOLS = {
    "num_layers": "L^A",
    "num_heads": "H^A",
    "ffn_size": "D_ffn^A",
    "depth": "D^A",
    "expand_ratio": "E^A",
    "width_mult": "W^A",
}
PAPER_TABLES = {
    ("num_layers", "num_heads", "ffn_size"): "Table 2: Transformer super-networks",
    ("depth", "expand_ratio", "width_mult"): "Table 3: OFA ResNet50 super-network",
}


@dataclass(frozen=True)
class TableModel:
    """A search space as a table row: `name` in the workflow, `label` shown, `source` file."""

    name: str
    label: str
    source: str
    space: SearchSpace
    paper: PaperRow | None


def table_models(
    paper_spaces: Iterable[str | Path], extra_spaces: Mapping[str, str | Path]
) -> list[TableModel]:
    """The paper's space files (named by stem: bert.yaml -> bert), then extra spaces (e.g. the default's).

    Models of the paper's Table 1 come first, in the paper's order, with the paper's values.
    """
    order = list(PAPER_TABLE1)
    files = {Path(path).stem: Path(path) for path in paper_spaces}
    models = []
    for name in sorted(files, key=lambda n: order.index(n) if n in order else len(order)):
        paper = PAPER_TABLE1.get(name)
        space = SearchSpace.from_yaml(files[name])
        models.append(TableModel(name, paper.label if paper else name, str(files[name]), space, paper))
    for name, path in extra_spaces.items():
        # the file name tells the embedded default's `bert` from the paper's
        label = f"{name} ({Path(path).name})"
        models.append(TableModel(name, label, str(path), SearchSpace.from_yaml(path), None))
    return models


# ------------------------------------------------------------------------------------------- Table 1


def table1(models: list[TableModel]) -> pd.DataFrame:
    """Tidy: one row per (model, quantity in arch/quant/joint), exact sizes as Python ints."""
    rows = []
    for m in models:
        s = m.space
        genes = {"arch": s.n_arch_genes, "quant": s.n_genes - s.n_arch_genes, "joint": s.n_genes}
        for quantity, symbol in SIZE_SYMBOLS.items():
            size, active = getattr(s, f"{quantity}_size"), getattr(s, f"active_{quantity}_size")
            rows.append(
                {
                    "model": m.name,
                    "label": m.label,
                    "source": m.source,
                    "quantity": quantity,
                    "symbol": symbol,
                    "genes": genes[quantity],
                    "size": size,
                    "power_of_ten": power_of_ten(size),
                    "paper_power_of_ten": getattr(m.paper, quantity) if m.paper else None,
                    "active_size": active,
                    "active_power_of_ten": power_of_ten(active),
                }
            )
    df = pd.DataFrame(rows)
    df["paper_power_of_ten"] = df["paper_power_of_ten"].astype("Int64")
    return df


def table1_markdown(df: pd.DataFrame) -> str:
    """Powers of ten next to the paper's, with a footnote wherever they differ, then the exact sizes."""
    powers, exact, footnotes = [], [], {}
    for label, rows in df.groupby("label", sort=False):
        rows = rows.set_index("quantity")
        model = rows["model"].iloc[0]
        power_row, exact_row = {"Model": label}, {"Model": label}
        for quantity, symbol in SIZE_SYMBOLS.items():
            r = rows.loc[quantity]
            cell = f"10^{r.power_of_ten}"
            if not pd.isna(r.paper_power_of_ten) and r.paper_power_of_ten != r.power_of_ten:
                footnotes[model] = _footnote(model, rows)
                cell += f" (paper: 10^{r.paper_power_of_ten})[^{model}]"
            power_row[symbol] = cell
            exact_row[symbol] = count_text(r["size"])
        for quantity, symbol in SIZE_SYMBOLS.items():
            power_row[f"active {symbol}"] = f"10^{rows.loc[quantity].active_power_of_ten}"
            exact_row[f"active {symbol}"] = count_text(rows.loc[quantity].active_size)
        powers.append(power_row)
        exact.append(exact_row)
    parts = [
        "# Table 1: search-space sizes",
        "",
        "Architecture (S^A), quantization policy (S^Q) and joint (S^J) search-space sizes as floor(log10) "
        "of the exact count, next to the paper's where the paper has the model. The paper counts nominal "
        "sizes, every gene free; the active sizes do not count genes of layers or blocks that a shallower "
        "depth choice drops (active S^Q is that of the quantization-only search on the largest network). "
        "Layer counts: docs/search-spaces.md.",
        "",
        _markdown(pd.DataFrame(powers)),
        "",
        *[f"[^{model}]: {text}" for model, text in footnotes.items()],
        "",
        "## Exact sizes",
        "",
        _markdown(pd.DataFrame(exact)),
        "",
    ]
    return "\n".join(parts)


def _footnote(model: str, rows: pd.DataFrame) -> str:
    ours = "; ".join(
        f"{symbol} = {approx_count(rows.loc[q]['size'])} from {rows.loc[q].genes} genes"
        for q, symbol in SIZE_SYMBOLS.items()
        if rows.loc[q].paper_power_of_ten != rows.loc[q].power_of_ten
    )
    why = DIFFERENCE_NOTES.get(model, "The paper does not state its gene counts.")
    return f"Ours: {ours}. {why}"


# ---------------------------------------------------------------------------------------- Tables 2-3


def choices_cell(count: int, choices: tuple) -> str:
    """The paper's notation, e.g. '12x[6, 8, 10, 12]'."""
    return f"{count}x[{', '.join(str(c) for c in choices)}]"


def table23(models: list[TableModel]) -> pd.DataFrame:
    """Tidy: one row per (model, elastic parameter), plus the model's quantization policy."""
    rows = []
    for m in models:
        params = tuple(p.name for p in m.space.elastic)
        entries = [
            (p.name, PARAMETER_SYMBOLS.get(p.name, p.name), p.count, p.choices) for p in m.space.elastic
        ]
        if m.space.quantization is not None:
            q = m.space.quantization
            entries.append((QUANTIZATION, "Q", len(q.layers), q.choices))
        for name, symbol, count, choices in entries:
            rows.append(
                {
                    "model": m.name,
                    "label": m.label,
                    "source": m.source,
                    "table": PAPER_TABLES.get(params, ""),
                    "parameter": name,
                    "symbol": symbol,
                    "count": count,
                    "choices": json.dumps(list(choices)),
                    "cell": choices_cell(count, choices),
                }
            )
    return pd.DataFrame(rows)


def table23_markdown(df: pd.DataFrame) -> str:
    """One markdown table per set of elastic parameters, columns as in the paper's Tables 2 and 3."""
    parts = ["# Tables 2 and 3: elastic parameters", ""]
    elastic = df[df["parameter"] != QUANTIZATION]
    param_sets = elastic.groupby("label", sort=False)["parameter"].apply(tuple)
    for params in dict.fromkeys(param_sets):
        labels = list(param_sets[param_sets == params].index)
        title = PAPER_TABLES.get(params, "Elastic parameters: " + ", ".join(params))
        rows = []
        for label in labels:
            cells = df[df["label"] == label].set_index("parameter")["cell"]
            row = {"Model": label}
            row.update({PARAMETER_SYMBOLS.get(p, p): cells[p] for p in params})
            row["Quantization policy (ours)"] = cells.get(QUANTIZATION, "none")
            rows.append(row)
        legend = ", ".join(f"{PARAMETER_SYMBOLS.get(p, p)} = {p}" for p in params)
        parts += [f"## {title}", "", _markdown(pd.DataFrame(rows)), "", f"Parameters: {legend}.", ""]
    parts += [
        "Each cell is count x [choices]: `count` genes, each taking one of the choices. The quantization "
        "column is one gene per quantizable layer (not a column of the paper's tables).",
        "",
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- files


def _markdown(df: pd.DataFrame) -> str:
    # numbers stay as written: tabulate would otherwise re-format the exact integers
    return df.to_markdown(index=False, disable_numparse=True)


def write_search_space_tables(
    models: list[TableModel],
    table1_csv: str | Path,
    table1_md: str | Path,
    table23_csv: str | Path,
    table23_md: str | Path,
) -> None:
    t1, t23 = table1(models), table23(models)
    write_text_atomic(table1_csv, t1.to_csv(index=False))
    write_text_atomic(table1_md, table1_markdown(t1))
    write_text_atomic(table23_csv, t23.to_csv(index=False))
    write_text_atomic(table23_md, table23_markdown(t23))
