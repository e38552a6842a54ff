"""simqnas.space: the YAML schema, genomes, exact sizes and the paper's spaces."""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from simqnas.space import Gene, SearchSpace, SpaceError, genome_key, spaces_from_config

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"
PAPER_SPACES = ROOT / "config" / "spaces" / "paper"
MINILM = ROOT / "config" / "spaces" / "minilm.yaml"

BERT_ELASTIC = {
    "num_layers": {"count": 1, "choices": [6, 7, 8, 9, 10, 11, 12]},
    "num_heads": {"count": 12, "choices": [6, 8, 10, 12]},
    "ffn_size": {"count": 12, "choices": [1024, 2048, 3072]},
}


def bert_dict() -> dict:
    return {
        "elastic": copy.deepcopy(BERT_ELASTIC),
        "quantization": {"layers": 74, "choices": ["int8", "fp32"]},
        "depth": [
            {
                "param": "num_layers",
                "units": [
                    {"num_heads": [k], "ffn_size": [k], "quantization": list(range(6 * k, 6 * k + 6))}
                    for k in range(12)
                ],
            }
        ],
    }


def tiny_dict() -> dict:
    """Two depth genes: `layers` gates three layers (start 1), `stem` gates one unit only at 2 (start 2)."""
    return {
        "elastic": {
            "layers": {"count": 1, "choices": [1, 2, 3]},
            "heads": {"count": 3, "choices": [1, 2]},
            "ffn": {"count": 3, "choices": [0.5, 1.0]},
            "stem": {"count": 1, "choices": [0, 1, 2]},
            "width": {"count": 1, "choices": [0.65, 1.0]},
        },
        "quantization": {"layers": 5, "choices": ["int8", "fp32"]},
        "depth": [
            {
                "param": "layers",
                "units": [{"heads": [k], "ffn": [k], "quantization": [k]} for k in range(3)],
            },
            {"param": "stem", "start": 2, "units": [{"width": [0], "quantization": [4]}]},
        ],
    }


@pytest.fixture(scope="module")
def bert() -> SearchSpace:
    return SearchSpace.from_dict(bert_dict())


@pytest.fixture(scope="module")
def tiny() -> SearchSpace:
    return SearchSpace.from_dict(tiny_dict())


@pytest.fixture(scope="module")
def paper() -> dict[str, SearchSpace]:
    nets = ("bert", "vit", "beit3", "resnet")
    return {net: SearchSpace.from_yaml(PAPER_SPACES / f"{net}.yaml") for net in nets}


# ------------------------------------------------------------------ genes and nominal sizes


def test_bert_genes_and_nominal_sizes(bert: SearchSpace) -> None:
    assert bert.n_genes == 1 + 12 + 12 + 74
    assert bert.cardinalities.dtype == np.int64
    assert list(bert.cardinalities[:3]) == [7, 4, 4]
    assert list(bert.cardinalities[12:14]) == [4, 3]
    assert bert.genes[0] == Gene("num_layers", 0, (6, 7, 8, 9, 10, 11, 12))
    assert bert.genes[25] == Gene("quantization", 0, ("int8", "fp32"))
    assert bert.genes[-1].label == "quantization[73]"
    assert bert.arch_size == 7 * 4**12 * 3**12
    assert bert.quant_size == 2**74
    assert bert.joint_size == 7 * 4**12 * 3**12 * 2**74
    assert all(type(s) is int for s in bert.sizes().values())


def test_cardinalities_are_read_only(bert: SearchSpace) -> None:
    with pytest.raises(ValueError):
        bert.cardinalities[0] = 1


def test_paper_spaces_match_tables_2_and_3(paper: dict[str, SearchSpace]) -> None:
    assert list(paper) == ["bert", "vit", "beit3", "resnet"]
    assert {n: len(s.quantization.layers) for n, s in paper.items()} == {
        "bert": 74,
        "vit": 74,
        "beit3": 72,
        "resnet": 62,
    }
    assert paper["bert"].arch_size == 7 * 4**12 * 3**12
    assert paper["vit"].arch_size == 3 * 4**12 * 3**12
    assert paper["beit3"].arch_size == 2 * 4**12 * 3**12
    assert paper["resnet"].arch_size == 3**5 * 3**18 * 3**6
    assert paper["resnet"].quant_size == 2**62


def test_minilm_space() -> None:
    space = SearchSpace.from_yaml(MINILM)
    assert [(p.name, p.count, p.choices) for p in space.elastic] == [
        ("num_layers", 1, (3, 4, 5, 6)),
        ("num_heads", 6, (6, 8, 10, 12)),
        ("ffn_size", 6, (512, 1024, 1536)),
    ]
    assert len(space.quantization.layers) == 38
    assert space.active_arch_size == sum(12**layers for layers in (3, 4, 5, 6))


# ------------------------------------------------------------------ active sizes


def _brute_force_active(space: SearchSpace) -> tuple[int, int, int]:
    """Distinct networks of the tiny space, deciding what runs from the decoded values alone."""
    arch_keys, joint_keys, quant_keys_at_largest = set(), set(), set()
    for genome in itertools.product(*(range(c) for c in space.cardinalities)):
        c = space.decode(np.array(genome))
        depth = c["layers"][0]
        stem_runs = c["stem"][0] == 2
        policy = list(c["quantization"].values())
        arch = (depth, c["stem"][0], tuple(c["heads"][:depth]), tuple(c["ffn"][:depth]))
        arch += (c["width"][0] if stem_runs else None,)
        quant = (tuple(policy[:depth]), policy[3], policy[4] if stem_runs else None)
        arch_keys.add(arch)
        joint_keys.add((arch, quant))
        largest = (depth, c["heads"], c["ffn"], c["width"]) == (3, [2, 2, 2], [1.0, 1.0, 1.0], [1.0])
        if largest and stem_runs:
            quant_keys_at_largest.add(quant)
    return len(arch_keys), len(quant_keys_at_largest), len(joint_keys)


def test_active_sizes_match_brute_force(tiny: SearchSpace) -> None:
    arch, quant, joint = _brute_force_active(tiny)
    assert (tiny.active_arch_size, tiny.active_quant_size, tiny.active_joint_size) == (arch, quant, joint)
    assert tiny.active_arch_size < tiny.arch_size
    assert tiny.active_joint_size < tiny.active_arch_size * tiny.active_quant_size


def test_active_sizes_of_paper_spaces(paper: dict[str, SearchSpace]) -> None:
    # BERT: L layers keep L head genes (4 choices) and L FFN genes (3 choices)
    assert paper["bert"].active_arch_size == sum((4 * 3) ** n for n in range(6, 13))
    # 74 - 6 (12 - L) layers stay in the policy
    assert paper["bert"].active_joint_size == sum(12**n * 2 ** (74 - 6 * (12 - n)) for n in range(6, 13))
    # OFA: 3 stem depths x per stage (1 + 3 + 9) for 0..2 extra blocks x 10 base expand genes x 6 widths
    assert paper["resnet"].active_arch_size == 3 * 13**4 * 3**10 * 3**6
    for space in paper.values():
        assert space.active_quant_size == space.quant_size  # the largest network runs every layer


def test_without_depth_active_equals_nominal(bert: SearchSpace) -> None:
    d = bert_dict()
    del d["depth"]
    flat = SearchSpace.from_dict(d)
    assert (flat.active_arch_size, flat.active_joint_size) == (flat.arch_size, flat.joint_size)


def test_active_mask_and_canonical(bert: SearchSpace) -> None:
    g = np.zeros(bert.n_genes, dtype=np.int64)  # 6 layers
    mask = bert.active_mask(g)
    assert mask[:7].all() and not mask[7:13].any()  # num_layers, heads of layers 0..5 / 6..11
    assert mask[25 : 25 + 36].all() and not mask[25 + 36 : 25 + 72].any() and mask[-2:].all()
    other = g.copy()
    other[10] = 3  # a head gene of dropped layer 9
    other[25 + 60] = 1  # a quantization gene of dropped layer 10
    assert genome_key(bert.canonical(other)) == genome_key(bert.canonical(g))
    other[3] = 3  # a head gene of kept layer 2
    assert genome_key(bert.canonical(other)) != genome_key(bert.canonical(g))
    batch = np.stack([g, other])
    assert bert.active_mask(batch).shape == batch.shape


# ------------------------------------------------------------------ encode / decode / sample / one-hot


def test_decode_names_every_value(bert: SearchSpace) -> None:
    g = np.zeros(bert.n_genes, dtype=np.int64)
    g[0], g[1], g[13], g[-1] = 6, 3, 2, 1
    c = bert.decode(g)
    assert list(c) == ["num_layers", "num_heads", "ffn_size", "quantization"]
    assert c["num_layers"] == [12]
    assert c["num_heads"] == [12] + [6] * 11
    assert c["ffn_size"] == [3072] + [1024] * 11
    assert list(c["quantization"]) == [f"q{i}" for i in range(74)]
    assert c["quantization"]["q73"] == "fp32" and c["quantization"]["q0"] == "int8"


def test_encode_decode_round_trip(tiny: SearchSpace, paper: dict[str, SearchSpace]) -> None:
    rng = np.random.default_rng(1)
    for space in [tiny, *paper.values()]:
        for g in space.sample(20, rng):
            config = space.decode(g)
            assert np.array_equal(space.encode(config), g)
            assert space.decode(space.encode(config)) == config


def test_sample_is_uniform_deterministic_and_covers_every_choice(bert: SearchSpace) -> None:
    a = bert.sample(2000, np.random.default_rng(7))
    assert a.shape == (2000, bert.n_genes) and a.dtype == np.int64
    for i, card in enumerate(bert.cardinalities):
        assert set(np.unique(a[:, i])) == set(range(card)), bert.genes[i].label
    assert np.array_equal(a, bert.sample(2000, np.random.default_rng(7)))
    assert not np.array_equal(a, bert.sample(2000, np.random.default_rng(8)))
    # 7 choices of num_layers: each close to 1/7 of the samples
    counts = np.bincount(a[:, 0], minlength=7)
    assert counts.min() > 2000 / 7 * 0.75


def test_one_hot(tiny: SearchSpace, bert: SearchSpace) -> None:
    # layers | heads x3 | ffn x3 | stem | width | quantization x5
    g = np.array([2, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1], dtype=np.int64)
    x = tiny.one_hot(g)
    expected = [0, 0, 1, *[1, 0, 0, 1, 0, 1], *[1, 0, 0, 1, 1, 0], *[0, 1, 0], *[0, 1]]
    expected += [1, 0, 1, 0, 0, 1, 1, 0, 0, 1]
    assert x.shape == (1, int(tiny.cardinalities.sum())) and x.dtype == np.float64
    assert x[0].tolist() == expected
    batch = bert.sample(5, np.random.default_rng(0))
    xb = bert.one_hot(batch)
    assert xb.shape == (5, 7 + 48 + 36 + 148)
    assert (xb.sum(axis=1) == bert.n_genes).all()


def test_validate_genome_errors(bert: SearchSpace) -> None:
    with pytest.raises(SpaceError, match=r"expected 99 genes per genome, got shape \(98,\)"):
        bert.validate_genome(np.zeros(98, dtype=np.int64))
    g = np.zeros(bert.n_genes, dtype=np.int64)
    g[14] = 3
    with pytest.raises(SpaceError, match=r"gene 14 \(ffn_size\[1\]\) = 3 outside 0..2"):
        bert.validate_genome(g)
    with pytest.raises(SpaceError, match="row 1 gene 14"):
        bert.validate_genome(np.stack([np.zeros_like(g), g]))
    with pytest.raises(SpaceError, match="must be integers"):
        bert.validate_genome(np.zeros(bert.n_genes))


def test_encode_errors_name_the_key(bert: SearchSpace) -> None:
    config = bert.decode(np.zeros(bert.n_genes, dtype=np.int64))
    bad = copy.deepcopy(config)
    bad["num_heads"][3] = 7
    with pytest.raises(SpaceError, match=r"config.num_heads\[3\]: 7 is not one of \[6, 8, 10, 12\]"):
        bert.encode(bad)
    bad = copy.deepcopy(config)
    del bad["quantization"]["q5"]
    with pytest.raises(SpaceError, match=r"config.quantization.q5: missing"):
        bert.encode(bad)
    bad = copy.deepcopy(config)
    bad["quantization"]["q5"] = "int4"
    with pytest.raises(SpaceError, match=r"config.quantization.q5: 'int4' is not one of"):
        bert.encode(bad)
    bad = copy.deepcopy(config)
    bad["ffn_size"] = bad["ffn_size"][:-1]
    with pytest.raises(SpaceError, match=re.escape("config.ffn_size: must be a list of 12 values")):
        bert.encode(bad)


def test_genome_key() -> None:
    assert genome_key(np.array([1, 0, 12])) == "1-0-12"
    assert genome_key([1, 0, 12]) == genome_key(np.array([1, 0, 12], dtype=np.int32))
    assert genome_key([1, 12, 0]) != genome_key([11, 2, 0])
    with pytest.raises(SpaceError, match="one integer genome"):
        genome_key(np.zeros((2, 3), dtype=np.int64))


# ------------------------------------------------------------------ derived spaces


def test_quant_subspace_fixes_the_largest_architecture(bert: SearchSpace) -> None:
    sub = bert.subspace("quant")
    assert sub.n_genes == bert.n_genes
    assert sub.arch_size == 1 and sub.quant_size == 2**74
    for g in sub.sample(10, np.random.default_rng(0)):
        c = sub.decode(g)
        assert c["num_layers"] == [12] and c["num_heads"] == [12] * 12 and c["ffn_size"] == [3072] * 12
        full = bert.encode(c)  # comparable with the full space's configs
        assert bert.decode(full) == c


def test_arch_subspace_fixes_int8(bert: SearchSpace) -> None:
    sub = bert.subspace("arch")
    assert sub.quant_size == 1 and sub.arch_size == bert.arch_size
    c = sub.decode(sub.sample(1, np.random.default_rng(0))[0])
    assert set(c["quantization"].values()) == {"int8"}
    assert bert.decode(bert.encode(c)) == c
    assert bert.subspace("joint") is bert
    with pytest.raises(SpaceError, match="kind must be one of"):
        bert.subspace("pruning")
    no_int8 = SearchSpace.from_dict({"quantization": {"layers": 2, "choices": ["fp32", "bf16"]}})
    with pytest.raises(SpaceError, match=re.escape("not among quantization.choices")):
        no_int8.subspace("arch")


def test_with_layer_names(bert: SearchSpace) -> None:
    names = [f"bert.encoder.layer.{i // 6}.m{i % 6}" for i in range(72)] + ["bert.pooler.dense", "classifier"]
    named = bert.with_layer_names(names)
    assert named.quantization.layers == tuple(names)
    assert named.active_joint_size == bert.active_joint_size
    c = named.decode(np.zeros(named.n_genes, dtype=np.int64))
    assert list(c["quantization"]) == names
    assert named.to_dict()["quantization"]["layers"] == names
    assert SearchSpace.from_dict(named.to_dict()) == named
    with pytest.raises(SpaceError, match="73 names given for 74 quantization layers"):
        bert.with_layer_names(names[:-1])
    with pytest.raises(SpaceError, match="duplicate layer name 'classifier'"):
        bert.with_layer_names([*names[:-2], "classifier", "classifier"])


def test_to_dict_round_trip(tiny: SearchSpace, paper: dict[str, SearchSpace]) -> None:
    for space in [tiny, *paper.values()]:
        again = SearchSpace.from_dict(space.to_dict())
        assert again == space
        assert again.sizes() == space.sizes()
    assert tiny.to_dict()["quantization"]["layers"] == 5


# ------------------------------------------------------------------ schema errors


def _mutated(path: str, value: object) -> dict:
    """bert_dict() with the key at dotted `path` set to `value` (DELETE removes it)."""
    d = bert_dict()
    *parents, last = path.split(".")
    node = d
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return d


DELETE = object()

SCHEMA_ERRORS = [
    ("elastic.num_heads.choices", [], "space.elastic.num_heads.choices: must be a non-empty list"),
    ("elastic.num_heads.choices", 6, "space.elastic.num_heads.choices: must be a non-empty list"),
    ("elastic.num_heads.choices", [6, 8, 8], "space.elastic.num_heads.choices: duplicate choices"),
    ("elastic.num_heads.choices", ["six"], "space.elastic.num_heads.choices: must be numbers, got 'six'"),
    ("elastic.num_heads.choices", [6, True], "space.elastic.num_heads.choices: must be numbers, got True"),
    ("elastic.num_heads.count", 0, "space.elastic.num_heads.count: must be a positive integer, got 0"),
    ("elastic.num_heads.count", 2.5, "space.elastic.num_heads.count: must be a positive integer"),
    ("elastic.num_heads.count", DELETE, "space.elastic.num_heads.count: missing"),
    ("elastic.num_heads.step", 2, "space.elastic.num_heads.step: unknown key"),
    ("elastic.num_heads", [6, 8], "space.elastic.num_heads: must be a mapping"),
    ("elastic.quantization", {"count": 1, "choices": [1]}, "parameter names must be identifiers"),
    ("extra", 1, "space.extra: unknown key"),
    ("quantization.layers", 0, "space.quantization.layers: must be a positive count, got 0"),
    ("quantization.layers", "74", "space.quantization.layers: must be a positive count or a non-empty list"),
    ("quantization.layers", ["a", "b", "a"], "space.quantization.layers: duplicate layer name 'a'"),
    ("quantization.choices", [], "space.quantization.choices: must be a non-empty list"),
    ("quantization.choices", ["int8", "int8"], "space.quantization.choices: duplicate choices"),
    ("quantization.choices", [8, 32], "space.quantization.choices: precisions must be lower-case names"),
    ("quantization.bits", [8], "space.quantization.bits: unknown key"),
    ("quantization.choices", DELETE, "space.quantization.choices: missing"),
    ("depth", {"param": "num_layers"}, "space.depth: must be a list"),
    ("depth.0.param", "num_heads_x", "space.depth[0].param: 'num_heads_x' is not an elastic parameter"),
    ("depth.0.param", "ffn_size", "space.depth[0].units[0].ffn_size: gene 0 already belongs to depth[0]"),
    ("depth.0.gene", 1, "space.depth[0].gene: 1 outside 0..0"),
    ("depth.0.start", "one", "space.depth[0].start: must be an integer"),
    ("depth.0.units", [], "space.depth[0].units: must be a non-empty list"),
    ("depth.0.units.1", {"num_heads": [12]}, "space.depth[0].units[1].num_heads: gene 12 outside 0..11"),
    ("depth.0.units.1", {"num_heads": [0]}, "space.depth[0].units[1].num_heads: gene 0 already belongs to"),
    ("depth.0.units.1", {"num_heads": 1}, "space.depth[0].units[1].num_heads: must be a non-empty list"),
    ("depth.0.units.1", {"heads": [1]}, "space.depth[0].units[1].heads: unknown parameter"),
    ("depth.0.units.1", {"quantization": [74]}, "space.depth[0].units[1].quantization: gene 74 outside"),
    ("depth.0.stride", 1, "space.depth[0].stride: unknown key"),
]


@pytest.mark.parametrize(("path", "value", "message"), SCHEMA_ERRORS)
def test_schema_errors_name_the_key(path: str, value: object, message: str) -> None:
    with pytest.raises(SpaceError) as error:
        SearchSpace.from_dict(_mutated(path, value))
    assert message in str(error.value)
    assert str(error.value).startswith("space.") and "\n" not in str(error.value)


def test_depth_parameter_needs_integer_choices() -> None:
    d = bert_dict()
    d["elastic"]["num_layers"]["choices"] = [6.0, 12.5]
    with pytest.raises(SpaceError, match=r"space.depth\[0\].param: num_layers must have integer choices"):
        SearchSpace.from_dict(d)


def test_empty_space_is_an_error() -> None:
    with pytest.raises(SpaceError, match=re.escape("space.elastic: a space needs")):
        SearchSpace.from_dict({"elastic": {}})
    with pytest.raises(SpaceError, match="space: must be a mapping, got list"):
        SearchSpace.from_dict([1, 2])


# ------------------------------------------------------------------ files


def test_from_yaml_space_file_and_workflow_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # a workflow config's paths are relative to the working directory
    assert SearchSpace.from_yaml(PAPER, supernet="bert") == SearchSpace.from_dict(bert_dict())
    assert SearchSpace.from_yaml(PAPER_SPACES / "bert.yaml") == SearchSpace.from_dict(bert_dict())
    two = tmp_path / "two.yaml"
    two.write_text(
        "supernets:\n"
        "  bert: {space: config/spaces/paper/bert.yaml}\n"
        "  vit: {space: config/spaces/paper/vit.yaml}\n"
    )
    with pytest.raises(SpaceError, match=r"two.yaml: a workflow config with supernets \(bert, vit"):
        SearchSpace.from_yaml(two)
    with pytest.raises(SpaceError, match=r"supernets.gpt: no such super-network \(known: bert, vit"):
        SearchSpace.from_yaml(two, supernet="gpt")
    bad = tmp_path / "bad.yaml"
    bad.write_text("supernets:\n  x:\n    space:\n      elastic: {a: {count: -1, choices: [1]}}\n")
    with pytest.raises(SpaceError, match=r"bad.yaml: supernets.x.space.elastic.a.count: must be a positive"):
        SearchSpace.from_yaml(bad, supernet="x")
    with pytest.raises(SpaceError, match=re.escape("missing.yaml: cannot read")):
        SearchSpace.from_yaml(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("elastic: {a: [\n")
    with pytest.raises(SpaceError, match=re.escape("broken.yaml: not valid YAML")):
        SearchSpace.from_yaml(broken)


def test_workflow_config_with_space_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    config = tmp_path / "config.yaml"
    config.write_text("datasets: {}\nsupernets:\n  small: {family: bert, space: config/spaces/minilm.yaml}\n")
    assert spaces_from_config(config) == {"small": SearchSpace.from_yaml(MINILM)}
    config.write_text("supernets:\n  small: {family: bert}\n")
    with pytest.raises(SpaceError, match=re.escape("supernets.small.space: missing")):
        spaces_from_config(config)
