"""Fig 2c and Fig 3: final hypervolumes over seeds (mean +- std, 95% t interval), one normalization."""

from pathlib import Path

import matplotlib.pyplot as plt

from simqnas.plots import hypervolume_curves, network_figures, space_ablation
from simqnas.summary import hypervolume_table
from tests.test_summary import BASELINES, runs


def _legend(figure: plt.Figure) -> list[str]:
    texts = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    plt.close(figure)
    return texts


def _annotations(figure: plt.Figure) -> list[str]:
    return [child.get_text() for child in figure.axes[0].texts]


def test_fig2c_gives_each_algorithm_s_final_hypervolume_with_its_interval():
    table, _ = hypervolume_table(runs(("linas", "nsga2")), BASELINES, 0.5)
    figure = hypervolume_curves(table, "size", "bert")
    assert any("normalization: accuracy 0.5..1, size_mb 0..90" in text for text in _annotations(figure))
    # one band (the t interval) per algorithm
    assert len(figure.axes[0].collections) == 2
    labels = _legend(figure)
    assert [label.split(":")[0] for label in labels] == ["linas", "nsga2"]
    assert all(" +- " in label and label.endswith("]") for label in labels)


def test_one_seed_has_no_interval():
    table, _ = hypervolume_table(runs(("linas",), seeds=(0,)), BASELINES, 0.5)
    assert _legend(hypervolume_curves(table, "size", "bert"))[0].endswith("(1 seed)")


def test_fig3_names_both_searches_hypervolumes(tmp_path: Path):
    evaluations = runs(("linas",), spaces=("quant", "joint"))
    table, _ = hypervolume_table(evaluations, BASELINES, 0.5)
    labels = _legend(space_ablation(evaluations, BASELINES, "bert", table))
    searches = [label for label in labels if "search" in label]
    assert [label.split(", ")[0] for label in searches] == ["joint search", "quant search"]
    assert all("hypervolume" in label and " +- " in label for label in searches)
    written = network_figures("bert", evaluations, BASELINES, table, tmp_path)
    assert tmp_path / "fig3_quant_vs_joint.png" in written
    assert (tmp_path / "fig2_hypervolume_size.png").stat().st_size > 10_000
