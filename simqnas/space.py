"""A joint search space: elastic architecture parameters plus a per-layer quantization policy.

A configuration is an integer genome: one gene per elastic choice (each parameter contributes `count`
genes, in YAML order) followed by one gene per quantization layer; a gene holds the index of the chosen
value. The YAML format (also found under `supernets.<name>.space` in a workflow config):

    elastic:                                  # the paper's Tables 2-3: name -> count x choices
      num_layers: {count: 1, choices: [6, 7, 8, 9, 10, 11, 12]}
      num_heads:  {count: 12, choices: [6, 8, 10, 12]}
    quantization:
      layers: 74                              # a count (names q0..q73) or a list of layer names
      choices: [int8, fp32]
    depth:                                    # optional: genes that a shallower depth drops
      - param: num_layers                     # the depth parameter ...
        gene: 0                               # ... and which of its genes (default 0)
        start: 1                              # unit k is kept iff the gene's value >= start + k (default 1)
        units:                                # one entry per droppable layer/block: the genes it owns
          - {num_heads: [0], quantization: [0, 1, 2, 3, 4, 5]}

`depth` only changes the "active" sizes (`active_*_size`), `active_mask` and `canonical`; nominal sizes
count every gene, as the paper's Table 1 does. See docs/search-spaces.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from simqnas.yamlfile import YamlError, load_yaml

QUANTIZATION = "quantization"
#: precision of every layer in the architecture-only subspace (the paper's all-INT8 reference point)
ARCH_ONLY_PRECISION = "int8"
SUBSPACE_KINDS = ("joint", "arch", "quant")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRECISION = re.compile(r"^[a-z][a-z0-9_]*$")

Choice = int | float
#: one droppable unit: (parameter name or "quantization", gene indices) pairs
Unit = tuple[tuple[str, tuple[int, ...]], ...]


class SpaceError(ValueError):
    """An invalid search space, genome or configuration; the message starts with the offending key path."""


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _is_number(x: object) -> bool:
    return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _unique(values: Sequence[Any]) -> bool:
    return len(set(values)) == len(values)


@dataclass(frozen=True)
class ElasticParameter:
    """One elastic architecture parameter: `count` genes that share the same ordered `choices`."""

    name: str
    count: int
    choices: tuple[Choice, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _IDENTIFIER.match(self.name) or self.name == QUANTIZATION:
            raise SpaceError(
                f"{self.name!r}: parameter names must be identifiers other than {QUANTIZATION!r}"
            )
        if not _is_int(self.count) or self.count <= 0:
            raise SpaceError(f"{self.name}.count: must be a positive integer, got {self.count!r}")
        if not isinstance(self.choices, list | tuple) or not self.choices:
            raise SpaceError(f"{self.name}.choices: must be a non-empty list")
        bad = [c for c in self.choices if not _is_number(c)]
        if bad:
            raise SpaceError(f"{self.name}.choices: must be numbers, got {bad[0]!r}")
        if not _unique(self.choices):
            raise SpaceError(f"{self.name}.choices: duplicate choices in {list(self.choices)}")
        object.__setattr__(self, "count", int(self.count))
        object.__setattr__(self, "choices", tuple(self.choices))


@dataclass(frozen=True)
class QuantizationSpace:
    """One gene per quantizable layer choosing its precision.

    Spaces read with a layer count get placeholder names q0..q{N-1}; a workflow swaps in the super-network's
    real module names with `SearchSpace.with_layer_names`.
    """

    layers: tuple[str, ...]
    choices: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.layers, list | tuple) or not self.layers:
            raise SpaceError("layers: must be a positive count or a non-empty list of layer names")
        bad_layer = [n for n in self.layers if not isinstance(n, str) or not n]
        if bad_layer:
            raise SpaceError(f"layers: layer names must be non-empty strings, got {bad_layer[0]!r}")
        if not _unique(self.layers):
            dup = next(n for n in self.layers if self.layers.count(n) > 1)
            raise SpaceError(f"layers: duplicate layer name {dup!r}")
        if not isinstance(self.choices, list | tuple) or not self.choices:
            raise SpaceError("choices: must be a non-empty list")
        bad = [c for c in self.choices if not isinstance(c, str) or not _PRECISION.match(c)]
        if bad:
            raise SpaceError(f"choices: precisions must be lower-case names like 'int8', got {bad[0]!r}")
        if not _unique(self.choices):
            raise SpaceError(f"choices: duplicate choices in {list(self.choices)}")
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "choices", tuple(self.choices))

    @staticmethod
    def generated_names(n: int) -> tuple[str, ...]:
        return tuple(f"q{i}" for i in range(n))


@dataclass(frozen=True)
class DepthGroup:
    """Layers or blocks that one depth gene keeps or drops.

    Unit k (0-based) is kept iff the depth gene's chosen value >= `start + k`; the genes a dropped unit owns
    are inactive. BERT: `num_layers` gene 0, start 1, unit k = encoder layer k. OFA-ResNet: a stage's depth
    gene (extra blocks 0..2), start 1, units = the two droppable blocks; the stem's residual conv exists only
    at depth 2, so start 2.
    """

    param: str
    units: tuple[Unit, ...]
    gene: int = 0
    start: int = 1


@dataclass(frozen=True)
class Gene:
    """One position of the genome: `choices[genome[i]]` is the chosen value."""

    param: str
    index: int
    choices: tuple[Any, ...]

    @property
    def label(self) -> str:
        return f"{self.param}[{self.index}]"


@dataclass(frozen=True)
class SearchSpace:
    """Elastic parameters (genes first, in order) and an optional per-layer quantization policy."""

    elastic: tuple[ElasticParameter, ...]
    quantization: QuantizationSpace | None
    depth: tuple[DepthGroup, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "elastic", tuple(self.elastic))
        object.__setattr__(self, "depth", tuple(self.depth))
        names = [p.name for p in self.elastic]
        if not _unique(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise SpaceError(f"elastic.{dup}: duplicate parameter")
        if not self.elastic and self.quantization is None:
            raise SpaceError("elastic: a space needs elastic parameters or quantization layers")
        self._check_depth()

    # ---------------------------------------------------------------- reading and writing

    @classmethod
    def from_dict(cls, d: Any, where: str = "space") -> SearchSpace:
        """Parse the YAML structure; every error names its key path, starting with `where`."""
        _expect_mapping(d, where, {"elastic", "quantization", "depth"})
        elastic_d = d.get("elastic", {})
        _expect_mapping(elastic_d, f"{where}.elastic", None)
        elastic = tuple(_parse_elastic(name, spec, f"{where}.elastic") for name, spec in elastic_d.items())
        quant = None
        if "quantization" in d:
            quant = _parse_quantization(d["quantization"], f"{where}.quantization")
        depth_d = d.get("depth", [])
        if not isinstance(depth_d, list):
            raise SpaceError(f"{where}.depth: must be a list of depth groups")
        depth = tuple(_parse_depth_group(g, f"{where}.depth[{i}]") for i, g in enumerate(depth_d))
        try:
            return cls(elastic, quant, depth)
        except SpaceError as e:
            raise SpaceError(f"{where}.{e}") from None

    @classmethod
    def from_yaml(cls, path: str | Path, supernet: str | None = None) -> SearchSpace:
        """A space file, or with `supernet` the `supernets.<supernet>.space` block of a workflow config."""
        data = _load_yaml(path)
        if supernet is None:
            if isinstance(data, dict) and "supernets" in data:
                names = ", ".join(map(str, data["supernets"] or {}))
                raise SpaceError(f"{path}: a workflow config with supernets ({names}); name one of them")
            return cls.from_dict(data, where=f"{path}: space")
        names = list(data.get("supernets") or {}) if isinstance(data, dict) else []
        if supernet not in names:
            known = ", ".join(map(str, names)) or "none"
            raise SpaceError(f"{path}: supernets.{supernet}: no such super-network (known: {known})")
        return _supernet_space(path, supernet, data["supernets"][supernet])

    def to_dict(self) -> dict[str, Any]:
        """The YAML structure; `from_dict(to_dict())` gives an equal space."""
        d: dict[str, Any] = {
            "elastic": {p.name: {"count": p.count, "choices": list(p.choices)} for p in self.elastic}
        }
        if self.quantization is not None:
            layers = self.quantization.layers
            generated = layers == QuantizationSpace.generated_names(len(layers))
            d["quantization"] = {
                "layers": len(layers) if generated else list(layers),
                "choices": list(self.quantization.choices),
            }
        if self.depth:
            d["depth"] = [
                {
                    "param": g.param,
                    "gene": g.gene,
                    "start": g.start,
                    "units": [{p: list(ix) for p, ix in unit} for unit in g.units],
                }
                for g in self.depth
            ]
        return d

    # ---------------------------------------------------------------- genes

    @cached_property
    def genes(self) -> tuple[Gene, ...]:
        genes = [Gene(p.name, i, p.choices) for p in self.elastic for i in range(p.count)]
        if self.quantization is not None:
            q = self.quantization
            genes += [Gene(QUANTIZATION, i, q.choices) for i in range(len(q.layers))]
        return tuple(genes)

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @cached_property
    def n_arch_genes(self) -> int:
        return sum(p.count for p in self.elastic)

    @cached_property
    def cardinalities(self) -> np.ndarray:
        """Number of choices per gene (int64, read-only)."""
        cards = np.array([len(g.choices) for g in self.genes], dtype=np.int64)
        cards.flags.writeable = False
        return cards

    @cached_property
    def _offsets(self) -> dict[str, int]:
        """Flat index of each parameter's first gene."""
        offsets, at = {}, 0
        for p in self.elastic:
            offsets[p.name] = at
            at += p.count
        offsets[QUANTIZATION] = at
        return offsets

    # ---------------------------------------------------------------- genomes

    def validate_genome(self, genome: Any) -> np.ndarray:
        """`genome` (one genome or a batch of rows) as int64, or a SpaceError naming the bad gene."""
        g = np.asarray(genome)
        if g.ndim not in (1, 2) or g.shape[-1] != self.n_genes:
            raise SpaceError(f"genome: expected {self.n_genes} genes per genome, got shape {g.shape}")
        if g.size and not np.issubdtype(g.dtype, np.integer):
            raise SpaceError(f"genome: genes must be integers, got dtype {g.dtype}")
        g = g.astype(np.int64, copy=False)
        bad = np.argwhere((g < 0) | (g >= self.cardinalities))
        if len(bad):
            pos = tuple(int(x) for x in bad[0])
            gene = self.genes[pos[-1]]
            row = f"row {pos[0]} " if g.ndim == 2 else ""
            raise SpaceError(
                f"genome: {row}gene {pos[-1]} ({gene.label}) = {g[pos]} outside 0..{len(gene.choices) - 1}"
            )
        return g

    def decode(self, genome: Any) -> dict[str, Any]:
        """{param: [value per gene], ..., "quantization": {layer: precision}} (nominal: every gene)."""
        g = self.validate_genome(genome)
        if g.ndim != 1:
            raise SpaceError(f"genome: decode takes one genome, got shape {g.shape}")
        config: dict[str, Any] = {}
        for p in self.elastic:
            at = self._offsets[p.name]
            config[p.name] = [p.choices[i] for i in g[at : at + p.count]]
        if self.quantization is not None:
            at = self._offsets[QUANTIZATION]
            q = self.quantization
            config[QUANTIZATION] = {name: q.choices[i] for name, i in zip(q.layers, g[at:], strict=True)}
        return config

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """The genome of a decoded configuration (exact inverse of `decode`)."""
        expected = [p.name for p in self.elastic] + ([QUANTIZATION] if self.quantization else [])
        if not isinstance(config, Mapping):
            raise SpaceError(f"config: must be a mapping with keys {expected}")
        _check_keys(config, "config", set(expected), required=set(expected))
        genome = np.zeros(self.n_genes, dtype=np.int64)
        for p in self.elastic:
            values = config[p.name]
            if not isinstance(values, list | tuple) or len(values) != p.count:
                raise SpaceError(f"config.{p.name}: must be a list of {p.count} values")
            at = self._offsets[p.name]
            for i, v in enumerate(values):
                genome[at + i] = _index_of(v, p.choices, f"config.{p.name}[{i}]")
        if self.quantization is not None:
            policy = config[QUANTIZATION]
            q = self.quantization
            if not isinstance(policy, Mapping):
                raise SpaceError(f"config.{QUANTIZATION}: must map each layer name to a precision")
            _check_keys(policy, f"config.{QUANTIZATION}", set(q.layers), required=set(q.layers))
            at = self._offsets[QUANTIZATION]
            for i, name in enumerate(q.layers):
                genome[at + i] = _index_of(policy[name], q.choices, f"config.{QUANTIZATION}.{name}")
        return genome

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, n_genes) int64 genomes, each gene uniform over its choices."""
        return rng.integers(0, self.cardinalities, size=(n, self.n_genes), dtype=np.int64)

    def one_hot(self, genomes: Any) -> np.ndarray:
        """(n, sum(cardinalities)) float features: the one-hot of every gene (LINAS predictor input)."""
        g = self.validate_genome(genomes)
        g = g.reshape(-1, self.n_genes)
        starts = np.concatenate([[0], np.cumsum(self.cardinalities)[:-1]])
        out = np.zeros((len(g), int(self.cardinalities.sum())))
        out[np.arange(len(g))[:, None], starts + g] = 1.0
        return out

    # ---------------------------------------------------------------- depth dependency

    @cached_property
    def _gates(self) -> tuple[tuple[int, int, tuple[int, ...]], ...]:
        """(depth gene flat index, minimum value, gated flat gene indices) per unit."""
        gates = []
        for g in self.depth:
            controller = self._offsets[g.param] + g.gene
            for k, unit in enumerate(g.units):
                members = tuple(self._offsets[p] + i for p, ix in unit for i in ix)
                gates.append((controller, g.start + k, members))
        return tuple(gates)

    def active_mask(self, genomes: Any) -> np.ndarray:
        """Boolean mask, same shape as `genomes`: False where a shallower depth choice drops the gene."""
        g = self.validate_genome(genomes)
        mask = np.ones(g.shape, dtype=bool)
        for controller, minimum, members in self._gates:
            values = np.asarray(self.genes[controller].choices)[g[..., controller]]
            mask[..., list(members)] &= (values >= minimum)[..., None]
        return mask

    def canonical(self, genomes: Any) -> np.ndarray:
        """Genomes with inactive genes set to 0, so that genomes of one and the same network compare equal."""
        g = self.validate_genome(genomes)
        return np.where(self.active_mask(g), g, 0)

    # ---------------------------------------------------------------- sizes (exact Python ints)

    @property
    def arch_size(self) -> int:
        return math.prod(int(c) for c in self.cardinalities[: self.n_arch_genes])

    @property
    def quant_size(self) -> int:
        return math.prod(int(c) for c in self.cardinalities[self.n_arch_genes :])

    @property
    def joint_size(self) -> int:
        return self.arch_size * self.quant_size

    @cached_property
    def _active_sizes(self) -> tuple[int, int, int]:
        """Exact (arch, quant, joint) counts of distinct configurations when dropped genes are ignored.

        Depth genes gate disjoint sets of genes and gate no depth gene, so the count factorizes: the genes
        no depth gene gates contribute their choices' product; each depth gene contributes the sum, over its
        choices, of the product of the choices of the genes it then keeps. Linear in the genes, never
        enumerating the space. The quantization count is that of the quantization-only search (the largest
        architecture, where every layer is present), so the joint count is not the product of the other two.
        """
        cards = [int(c) for c in self.cardinalities]
        gates_of: dict[int, list[tuple[int, tuple[int, ...]]]] = {}
        for controller, minimum, members in self._gates:
            gates_of.setdefault(controller, []).append((minimum, members))
        gated = {i for gates in gates_of.values() for _, members in gates for i in members}
        free = [i for i in range(self.n_genes) if i not in gated and i not in gates_of]
        arch = math.prod(cards[i] for i in free if i < self.n_arch_genes)
        quant = math.prod(cards[i] for i in free if i >= self.n_arch_genes)
        arch_total, joint_total, quant_at_largest = arch, arch * quant, quant
        for controller, gates in gates_of.items():
            arch_sum = joint_sum = 0
            choices = self.genes[controller].choices
            for value in choices:
                kept = [i for minimum, members in gates if value >= minimum for i in members]
                kept_arch = math.prod(cards[i] for i in kept if i < self.n_arch_genes)
                kept_quant = math.prod(cards[i] for i in kept if i >= self.n_arch_genes)
                arch_sum += kept_arch
                joint_sum += kept_arch * kept_quant
                if value == max(choices):
                    quant_at_largest *= kept_quant
            arch_total *= arch_sum
            joint_total *= joint_sum
        return arch_total, quant_at_largest, joint_total

    @property
    def active_arch_size(self) -> int:
        return self._active_sizes[0]

    @property
    def active_quant_size(self) -> int:
        return self._active_sizes[1]

    @property
    def active_joint_size(self) -> int:
        return self._active_sizes[2]

    def sizes(self) -> dict[str, int]:
        return {
            "arch": self.arch_size,
            "quant": self.quant_size,
            "joint": self.joint_size,
            "active_arch": self.active_arch_size,
            "active_quant": self.active_quant_size,
            "active_joint": self.active_joint_size,
        }

    # ---------------------------------------------------------------- derived spaces

    def subspace(self, kind: str) -> SearchSpace:
        """The same genes with narrowed choices, so decoded configs compare with this space's.

        "quant": every elastic gene fixed to its largest value (quantization-policy-only search, Fig. 3);
        "arch": every layer fixed to int8 (architecture-only search); "joint": this space.
        """
        if kind == "joint":
            return self
        if kind == "quant":
            if self.quantization is None:
                raise SpaceError("subspace: 'quant' needs quantization layers, this space has none")
            elastic = tuple(replace(p, choices=(max(p.choices),)) for p in self.elastic)
            return replace(self, elastic=elastic)
        if kind == "arch":
            if self.quantization is None:
                return self
            if ARCH_ONLY_PRECISION not in self.quantization.choices:
                raise SpaceError(
                    f"subspace: 'arch' fixes layers to {ARCH_ONLY_PRECISION!r}, "
                    f"not among quantization.choices {list(self.quantization.choices)}"
                )
            return replace(self, quantization=replace(self.quantization, choices=(ARCH_ONLY_PRECISION,)))
        raise SpaceError(f"subspace: kind must be one of {list(SUBSPACE_KINDS)}, got {kind!r}")

    def with_layer_names(self, names: Iterable[str]) -> SearchSpace:
        """A copy whose quantization layers carry the super-network's real module names."""
        names = tuple(names)
        if self.quantization is None:
            raise SpaceError("with_layer_names: this space has no quantization layers")
        if len(names) != len(self.quantization.layers):
            raise SpaceError(
                f"with_layer_names: {len(names)} names given for "
                f"{len(self.quantization.layers)} quantization layers"
            )
        try:
            return replace(self, quantization=replace(self.quantization, layers=names))
        except SpaceError as e:
            raise SpaceError(f"with_layer_names: {e}") from None

    # ---------------------------------------------------------------- checks

    def _check_depth(self) -> None:
        counts = {p.name: p.count for p in self.elastic}
        if self.quantization is not None:
            counts[QUANTIZATION] = len(self.quantization.layers)
        by_name = {p.name: p for p in self.elastic}
        owner: dict[tuple[str, int], str] = {}
        for gi, g in enumerate(self.depth):
            at = f"depth[{gi}]"
            if g.param not in by_name:
                raise SpaceError(f"{at}.param: {g.param!r} is not an elastic parameter ({list(by_name)})")
            if not all(_is_int(c) for c in by_name[g.param].choices):
                raise SpaceError(f"{at}.param: {g.param} must have integer choices to be a depth parameter")
            if not _is_int(g.gene) or not 0 <= g.gene < counts[g.param]:
                raise SpaceError(f"{at}.gene: {g.gene!r} outside 0..{counts[g.param] - 1}")
            if not _is_int(g.start):
                raise SpaceError(f"{at}.start: must be an integer, got {g.start!r}")
            owner[(g.param, g.gene)] = f"{at} (its depth gene)"
        for gi, g in enumerate(self.depth):
            for ui, unit in enumerate(g.units):
                for param, indices in unit:
                    at = f"depth[{gi}].units[{ui}].{param}"
                    if param not in counts:
                        raise SpaceError(f"{at}: unknown parameter (known: {list(counts)})")
                    for i in indices:
                        if not _is_int(i) or not 0 <= i < counts[param]:
                            raise SpaceError(f"{at}: gene {i!r} outside 0..{counts[param] - 1}")
                        if (param, i) in owner:
                            raise SpaceError(f"{at}: gene {i} already belongs to {owner[(param, i)]}")
                        owner[(param, i)] = f"depth[{gi}].units[{ui}]"


def genome_key(genome: Any) -> str:
    """A stable string key of one genome, e.g. "3-0-2-1"."""
    g = np.asarray(genome)
    if g.ndim != 1 or (g.size and not np.issubdtype(g.dtype, np.integer)):
        raise SpaceError(f"genome: a key needs one integer genome, got shape {g.shape} dtype {g.dtype}")
    return "-".join(str(int(x)) for x in g)


#: counts up to this many bits print exactly (about 900 digits: well within Python's int-to-str limit)
EXACT_COUNT_BITS = 3000


def power_of_ten(n: int) -> int:
    """floor(log10(n)) of a positive integer, exactly, without converting it to text (Python refuses to
    convert integers of more than 4,300 digits, e.g. the joint count of a 20,000-layer space)."""
    if n < 1:
        raise ValueError(f"power_of_ten: needs a positive integer, got {n}")
    k = int((n.bit_length() - 1) * math.log10(2))
    while 10 ** (k + 1) <= n:
        k += 1
    while 10**k > n:
        k -= 1
    return k


def approx_count(n: int) -> str:
    """Two significant digits, e.g. 18889465931478580854784 -> '1.9e22' (any size of integer)."""
    k = power_of_ten(n)
    mantissa = f"{n / 10**k:.1f}"  # int / int is correctly rounded for integers of any size
    if mantissa == "10.0":
        mantissa, k = "1.0", k + 1
    return f"{mantissa}e{k}"


def count_text(n: int) -> str:
    """An exact count as text, or two significant digits where it has more than ~900 digits."""
    return str(n) if n.bit_length() <= EXACT_COUNT_BITS else f"about {approx_count(n)}"


def space_from_spec(spec: str | Mapping[str, Any], where: str, base: Path = Path()) -> SearchSpace:
    """A space given inline (a mapping) or as a path to a space file (relative paths from `base`)."""
    if isinstance(spec, str):
        path = base / spec
        if not path.is_file():
            raise SpaceError(f"{where}: space file not found: {path}")
        return SearchSpace.from_yaml(path)
    return SearchSpace.from_dict(spec, where=where)


def spaces_from_config(path: str | Path, data: Any = None) -> dict[str, SearchSpace]:
    """Every `supernets.<name>.space` (inline, or a path to a space file) of a workflow config.

    Other keys are the workflow's business and are not looked at here.
    """
    if data is None:
        data = _load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("supernets"), dict) or not data["supernets"]:
        raise SpaceError(f"{path}: supernets: must be a non-empty mapping of super-network names")
    return {str(name): _supernet_space(path, name, entry) for name, entry in data["supernets"].items()}


def _supernet_space(path: str | Path, name: Any, entry: Any) -> SearchSpace:
    if not isinstance(entry, dict) or "space" not in entry:
        raise SpaceError(f"{path}: supernets.{name}.space: missing")
    if isinstance(entry["space"], str):
        # a path, relative to the working directory like every path of a workflow config
        return SearchSpace.from_yaml(entry["space"])
    return SearchSpace.from_dict(entry["space"], where=f"{path}: supernets.{name}.space")


# -------------------------------------------------------------------- parsing helpers


def _load_yaml(path: str | Path) -> Any:
    try:
        return load_yaml(path)
    except YamlError as e:
        raise SpaceError(str(e)) from None


def _expect_mapping(d: Any, where: str, allowed: set[str] | None) -> None:
    if not isinstance(d, dict):
        raise SpaceError(f"{where}: must be a mapping, got {type(d).__name__}")
    if allowed is not None:
        _check_keys(d, where, allowed)


def _check_keys(d: Mapping[str, Any], where: str, allowed: set[str], required: Iterable[str] = ()) -> None:
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise SpaceError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(set(required) - set(d))
    if missing:
        raise SpaceError(f"{where}.{missing[0]}: missing")


def _parse_elastic(name: Any, spec: Any, where: str) -> ElasticParameter:
    at = f"{where}.{name}"
    _expect_mapping(spec, at, {"count", "choices"})
    _check_keys(spec, at, {"count", "choices"}, required={"count", "choices"})
    if not isinstance(spec["choices"], list) or not spec["choices"]:
        raise SpaceError(f"{at}.choices: must be a non-empty list")
    try:
        return ElasticParameter(name, spec["count"], tuple(spec["choices"]))
    except SpaceError as e:
        raise SpaceError(f"{where}.{e}") from None


def _parse_quantization(spec: Any, where: str) -> QuantizationSpace:
    _expect_mapping(spec, where, {"layers", "choices"})
    _check_keys(spec, where, {"layers", "choices"}, required={"layers", "choices"})
    layers = spec["layers"]
    if _is_int(layers):
        if layers <= 0:
            raise SpaceError(f"{where}.layers: must be a positive count, got {layers}")
        layers = QuantizationSpace.generated_names(layers)
    elif not isinstance(layers, list):
        raise SpaceError(f"{where}.layers: must be a positive count or a non-empty list of layer names")
    if not isinstance(spec["choices"], list) or not spec["choices"]:
        raise SpaceError(f"{where}.choices: must be a non-empty list")
    try:
        return QuantizationSpace(tuple(layers), tuple(spec["choices"]))
    except SpaceError as e:
        raise SpaceError(f"{where}.{e}") from None


def _parse_depth_group(g: Any, where: str) -> DepthGroup:
    _expect_mapping(g, where, {"param", "gene", "start", "units"})
    _check_keys(g, where, {"param", "gene", "start", "units"}, required={"param", "units"})
    for key in ("gene", "start"):
        if key in g and not _is_int(g[key]):
            raise SpaceError(f"{where}.{key}: must be an integer, got {g[key]!r}")
    if not isinstance(g["param"], str):
        raise SpaceError(f"{where}.param: must be a parameter name, got {g['param']!r}")
    if not isinstance(g["units"], list) or not g["units"]:
        raise SpaceError(f"{where}.units: must be a non-empty list of {{param: [gene indices]}} mappings")
    units = []
    for ui, unit in enumerate(g["units"]):
        at = f"{where}.units[{ui}]"
        if not isinstance(unit, dict) or not unit:
            raise SpaceError(f"{at}: must be a non-empty mapping {{param: [gene indices]}}")
        members = []
        for param, indices in unit.items():
            if not isinstance(indices, list) or not indices or not all(_is_int(i) for i in indices):
                raise SpaceError(f"{at}.{param}: must be a non-empty list of gene indices")
            members.append((str(param), tuple(int(i) for i in indices)))
        units.append(tuple(members))
    return DepthGroup(g["param"], tuple(units), gene=g.get("gene", 0), start=g.get("start", 1))


def _index_of(value: Any, choices: tuple[Any, ...], where: str) -> int:
    for i, c in enumerate(choices):
        if type(value) is not bool and value == c:
            return i
    raise SpaceError(f"{where}: {value!r} is not one of {list(choices)}")
