"""Elastic transformer building blocks shared by the transformer super-networks (BERT, ViT, Multiway).

Elasticity keeps a prefix: a sub-network uses the first h attention heads, the first k FFN neurons and the
first L layers. Every elastic size is therefore a leading slice of a full weight tensor, which makes
extraction generic (`copy_prefix_weights`) and lets training reorder heads and neurons by importance first
(DynaBERT), so that the prefix holds the most important ones.

Linear names follow Hugging Face BERT (`attention.self.query|key|value`, `attention.output.dense`,
`intermediate.dense`, `output.dense`) so that checkpoints load by name and quantization policies keyed by
module name apply to super- and sub-network alike. A block built with `elastic=False` holds plain
`nn.Linear` modules and calls them as modules: that is the extracted form, which quantization tools see as
ordinary Linear layers (they match exact types and module paths).

A Multiway (BEiT-3) layer is the pre-norm layer with Sub-LN (`sub_layernorm`: a LayerNorm on the input of the
attention output projection and of the FFN output projection, over the active features) and further FFN
experts (`experts`, one per other modality) beside its own FFN, which is the first modality's (vision)
expert; the attention is shared by every modality.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
}


def active_size(what: str, value: int | None, maximum: int) -> int:
    """`value` checked to be an integer in [1, maximum]; None means `maximum` (the full size)."""
    if value is None:
        return maximum
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValueError(f"{what}: {value!r} is not an integer in [1, {maximum}]")
    return value


class ElasticLinear(nn.Linear):
    """A Linear whose active output rows / input columns can be restricted to a leading slice."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.active_in = in_features
        self.active_out = out_features

    def set_active(self, *, in_features: int | None = None, out_features: int | None = None) -> None:
        """Use the first `in_features` inputs / `out_features` outputs (None: all)."""
        self.active_in = active_size("in_features", in_features, self.in_features)
        self.active_out = active_size("out_features", out_features, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active_in == self.in_features and self.active_out == self.out_features:
            return super().forward(x)
        bias = None if self.bias is None else self.bias[: self.active_out]
        return F.linear(x, self.weight[: self.active_out, : self.active_in], bias)

    def static(self) -> nn.Linear:
        """A plain nn.Linear holding a copy of the active slice."""
        linear = nn.Linear(self.active_in, self.active_out, bias=self.bias is not None)
        return copy_prefix_weights(self, linear)

    @torch.no_grad()
    def permute_(
        self, *, out_order: torch.Tensor | None = None, in_order: torch.Tensor | None = None
    ) -> None:
        """Reorder output rows / input columns in place (the function of the network is unchanged when the
        neighbouring layer is permuted consistently)."""
        if out_order is not None:
            self.weight.copy_(self.weight[out_order])
            if self.bias is not None:
                self.bias.copy_(self.bias[out_order])
        if in_order is not None:
            self.weight.copy_(self.weight[:, in_order])


def copy_prefix_weights(source: nn.Module, target: nn.Module) -> nn.Module:
    """Fill every parameter and buffer of `target` with the leading slice of `source`'s tensor of that name.

    `target` is a (smaller) static copy built for an architecture, so its shapes say what to keep; tensors of
    dropped layers are simply absent from it. Returns `target`.
    """
    source_state = source.state_dict()
    sliced = {}
    for key, tensor in target.state_dict().items():
        if key not in source_state:
            raise KeyError(f"{key}: not in the source network")
        full = source_state[key]
        if full.dim() != tensor.dim() or any(t > f for t, f in zip(tensor.shape, full.shape, strict=True)):
            raise ValueError(
                f"{key}: target shape {tuple(tensor.shape)} is not a slice of {tuple(full.shape)}"
            )
        sliced[key] = full[tuple(slice(0, n) for n in tensor.shape)]
    target.load_state_dict(sliced)
    return target


class ElasticLayerNorm(nn.LayerNorm):
    """A LayerNorm over a leading slice of its features (a Sub-LN inside an elastic attention or FFN)."""

    def __init__(self, features: int, eps: float) -> None:
        super().__init__(features, eps=eps)
        self.active = features

    def set_active(self, features: int | None) -> None:
        self.active = active_size("features", features, self.normalized_shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active == self.normalized_shape[0]:
            return super().forward(x)
        k = self.active
        return F.layer_norm(x, (k,), self.weight[:k], self.bias[:k], self.eps)

    @torch.no_grad()
    def permute_(self, order: torch.Tensor) -> None:
        """Reorder features in place (a LayerNorm commutes with a permutation of its affine parameters)."""
        self.weight.copy_(self.weight[order])
        self.bias.copy_(self.bias[order])


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention projections (query, key, value) with an elastic head
    count: h active heads use the first h * head_dim rows of each projection."""

    def __init__(
        self, hidden_size: int, num_heads: int, head_dim: int, *, dropout: float = 0.0, elastic: bool = True
    ) -> None:
        super().__init__()
        linear = ElasticLinear if elastic else nn.Linear
        self.query = linear(hidden_size, num_heads * head_dim)
        self.key = linear(hidden_size, num_heads * head_dim)
        self.value = linear(hidden_size, num_heads * head_dim)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.active_heads = num_heads

    def set_active(self, num_heads: int | None) -> None:
        self.active_heads = active_size("num_heads", num_heads, self.num_heads)
        for projection in (self.query, self.key, self.value):
            projection.set_active(out_features=self.active_heads * self.head_dim)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor | None) -> torch.Tensor:
        """(batch, tokens, hidden) -> context (batch, tokens, active_heads * head_dim)."""

        def heads(projection: nn.Module) -> torch.Tensor:
            return projection(x).unflatten(-1, (self.active_heads, self.head_dim)).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            heads(self.query),
            heads(self.key),
            heads(self.value),
            attn_mask=mask_bias,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return context.transpose(1, 2).flatten(2)

    @torch.no_grad()
    def permute_heads_(self, order: torch.Tensor) -> torch.Tensor:
        """Reorder heads in place; returns the matching order of the context features."""
        rows = (order[:, None] * self.head_dim + torch.arange(self.head_dim)).flatten()
        for projection in (self.query, self.key, self.value):
            projection.permute_(out_order=rows)
        return rows


def attention_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, tokens) 1/0 mask -> additive bias (batch, 1, 1, tokens) that removes padded keys."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class TransformerLayer(nn.Module):
    """An encoder layer with elastic head count and FFN size, in Hugging Face BERT's module layout.

    Post-norm (BERT): LayerNorms live in `attention.output.LayerNorm` and `output.LayerNorm`.
    Pre-norm (`norm_first=True`, ViT): they are `layernorm_before` and `layernorm_after`, as in HF ViT.
    Multiway (pre-norm only): `sub_layernorm` adds `attention.output.sub_layernorm` and
    `output.sub_layernorm`; each name in `experts` adds an FFN expert `experts.<name>` (its own `layernorm`,
    `intermediate.dense`, `output.dense`) that `forward(..., expert=<name>)` runs instead of the layer's FFN.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        ffn_size: int,
        *,
        head_dim: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation: str = "gelu",
        eps: float = 1e-12,
        norm_first: bool = False,
        sub_layernorm: bool = False,
        experts: Sequence[str] = (),
        elastic: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: unsupported '{activation}' (supported: {sorted(ACTIVATIONS)})")
        if (sub_layernorm or experts) and not norm_first:
            raise ValueError("sub_layernorm and experts need norm_first (a pre-norm Multiway layer)")
        linear = ElasticLinear if elastic else nn.Linear
        self.options = {
            "head_dim": head_dim,
            "dropout": dropout,
            "attention_dropout": attention_dropout,
            "activation": activation,
            "eps": eps,
            "norm_first": norm_first,
            "sub_layernorm": sub_layernorm,
            "experts": tuple(experts),
        }
        self.hidden_size = hidden_size
        layernorm = ElasticLayerNorm if elastic else nn.LayerNorm

        # modules in the order the forward pass uses them: a strict export lists weights by use, a non-strict
        # one by registration, and the two must give the same graph (tests/test_quantize.py)
        def output_projection(features: int) -> nn.ModuleDict:
            output = nn.ModuleDict()
            if sub_layernorm:
                output["sub_layernorm"] = layernorm(features, eps=eps)
            output["dense"] = linear(features, hidden_size)
            if not norm_first:
                output["LayerNorm"] = nn.LayerNorm(hidden_size, eps=eps)
            return output

        def feed_forward() -> tuple[nn.ModuleDict, nn.ModuleDict]:
            return nn.ModuleDict({"dense": linear(hidden_size, ffn_size)}), output_projection(ffn_size)

        if norm_first:
            self.layernorm_before = nn.LayerNorm(hidden_size, eps=eps)
        self.attention = nn.ModuleDict(
            {
                "self": SelfAttention(
                    hidden_size, num_heads, head_dim, dropout=attention_dropout, elastic=elastic
                ),
                "output": output_projection(num_heads * head_dim),
            }
        )
        if norm_first:
            self.layernorm_after = nn.LayerNorm(hidden_size, eps=eps)
        self.intermediate, self.output = feed_forward()
        if experts:
            self.experts = nn.ModuleDict()
            for name in experts:
                intermediate, output = feed_forward()
                self.experts[name] = nn.ModuleDict(
                    {
                        "layernorm": nn.LayerNorm(hidden_size, eps=eps),
                        "intermediate": intermediate,
                        "output": output,
                    }
                )
        self.dropout = nn.Dropout(dropout)
        self.activation = ACTIVATIONS[activation]

    @property
    def self_attention(self) -> SelfAttention:
        return self.attention["self"]

    @property
    def active_ffn_size(self) -> int:
        dense = self.intermediate["dense"]
        return dense.active_out if isinstance(dense, ElasticLinear) else dense.out_features

    def _feed_forwards(self) -> list[tuple[nn.ModuleDict, nn.ModuleDict]]:
        """(intermediate, output) of the layer's FFN and of every further expert."""
        experts = self.experts.values() if self.options["experts"] else []
        return [(self.intermediate, self.output)] + [(e["intermediate"], e["output"]) for e in experts]

    def set_active(self, num_heads: int | None = None, ffn_size: int | None = None) -> None:
        """Use the first `num_heads` heads and `ffn_size` FFN neurons of every expert (None: all)."""
        attention = self.self_attention
        attention.set_active(num_heads)
        context = attention.active_heads * attention.head_dim
        self.attention["output"]["dense"].set_active(in_features=context)
        if self.options["sub_layernorm"]:
            self.attention["output"]["sub_layernorm"].set_active(context)
        for intermediate, output in self._feed_forwards():
            intermediate["dense"].set_active(out_features=ffn_size)
            output["dense"].set_active(in_features=ffn_size)
            if self.options["sub_layernorm"]:
                output["sub_layernorm"].set_active(ffn_size)

    @staticmethod
    def _project(output: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
        """An output projection, behind its Sub-LN if the layer has one."""
        return output["dense"](output["sub_layernorm"](x) if "sub_layernorm" in output else x)

    def forward(
        self, x: torch.Tensor, mask_bias: torch.Tensor | None, expert: str | None = None
    ) -> torch.Tensor:
        """`expert`: the FFN expert of a further modality (Multiway); None runs the layer's own FFN."""
        if self.options["norm_first"]:
            context = self.self_attention(self.layernorm_before(x), mask_bias)
            x = x + self.dropout(self._project(self.attention["output"], context))
            if expert is None:
                layernorm, intermediate, output = self.layernorm_after, self.intermediate, self.output
            else:
                chosen = self.experts[expert]
                layernorm, intermediate = chosen["layernorm"], chosen["intermediate"]
                output = chosen["output"]
            hidden = self.activation(intermediate["dense"](layernorm(x)))
            return x + self.dropout(self._project(output, hidden))
        attention_output = self.attention["output"]
        x = attention_output["LayerNorm"](
            x + self.dropout(attention_output["dense"](self.self_attention(x, mask_bias)))
        )
        hidden = self.activation(self.intermediate["dense"](x))
        return self.output["LayerNorm"](x + self.dropout(self.output["dense"](hidden)))

    def extract(self, keep_experts: bool = True) -> TransformerLayer:
        """A static copy (plain nn.Linear, sliced weights) of the active configuration; without
        `keep_experts`, only the layer's own FFN (what one modality runs)."""
        options = self.options if keep_experts else {**self.options, "experts": ()}
        layer = TransformerLayer(
            self.hidden_size,
            self.self_attention.active_heads,
            self.active_ffn_size,
            **options,
            elastic=False,
        )
        return copy_prefix_weights(self, layer).train(self.training)

    @torch.no_grad()
    def permute_(
        self, head_order: torch.Tensor | None = None, neuron_order: torch.Tensor | None = None
    ) -> None:
        """Reorder heads and FFN neurons in place without changing the layer's function."""
        if head_order is not None:
            rows = self.self_attention.permute_heads_(head_order)
            self.attention["output"]["dense"].permute_(in_order=rows)
            if self.options["sub_layernorm"]:
                self.attention["output"]["sub_layernorm"].permute_(rows)
        if neuron_order is not None:
            # the layer's own FFN: further experts have neurons of their own
            self.intermediate["dense"].permute_(out_order=neuron_order)
            self.output["dense"].permute_(in_order=neuron_order)
            if self.options["sub_layernorm"]:
                self.output["sub_layernorm"].permute_(neuron_order)


class Encoder(nn.Module):
    """A stack of layers with elastic depth: the first `active_layers` run."""

    def __init__(self, layers: Iterable[nn.Module]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)
        self.active_layers = len(self.layer)

    @classmethod
    def of_transformer_layers(
        cls, hidden_size: int, num_heads: Sequence[int], ffn_sizes: Sequence[int], **layer_options
    ) -> Encoder:
        """One `TransformerLayer` per (heads, FFN size) pair, all with the same `layer_options`."""
        return cls(
            TransformerLayer(hidden_size, heads, ffn, **layer_options)
            for heads, ffn in zip(num_heads, ffn_sizes, strict=True)
        )

    def set_active(self, num_layers: int | None) -> None:
        self.active_layers = active_size("num_layers", num_layers, len(self.layer))

    def forward(
        self, x: torch.Tensor, mask_bias: torch.Tensor | None, expert: str | None = None
    ) -> torch.Tensor:
        for layer in self.layer[: self.active_layers]:
            x = layer(x, mask_bias, expert)
        return x


def reorder_by_importance_(model: nn.Module, losses: Iterable[Callable[[], torch.Tensor]]) -> None:
    """Sort the heads and FFN neurons of every `TransformerLayer` in `model` by importance, most important
    first, so that elastic prefixes keep them (DynaBERT's network rewiring).

    Importance is first-order (Taylor): |sum over a batch of activation * dLoss/dactivation| per head
    (summed over its features) or neuron, accumulated over the batches; each element of `losses` runs the
    full network on one batch and returns its loss. The full network's function is unchanged.
    """
    layers = [m for m in model.modules() if isinstance(m, TransformerLayer)]
    if not layers:  # nothing to reorder (a ResNet keeps OFA's channel order): skip the backward passes
        return
    captured: dict[tuple[int, str], torch.Tensor] = {}

    def capture(key: tuple[int, str]) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            args[0].retain_grad()
            captured[key] = args[0]

        return hook

    handles = []
    for i, layer in enumerate(layers):
        handles.append(layer.attention["output"]["dense"].register_forward_pre_hook(capture((i, "heads"))))
        handles.append(layer.output["dense"].register_forward_pre_hook(capture((i, "neurons"))))
    scores: dict[tuple[int, str], torch.Tensor] = {}
    try:
        for loss in losses:
            model.zero_grad(set_to_none=True)
            loss().backward()
            for (i, kind), x in captured.items():
                score = (x * x.grad).sum(dim=tuple(range(x.dim() - 1)))
                if kind == "heads":
                    score = score.unflatten(0, (-1, layers[i].self_attention.head_dim)).sum(-1)
                scores[i, kind] = scores.get((i, kind), 0) + score.abs()
            captured.clear()
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
    for i, layer in enumerate(layers):
        layer.permute_(
            torch.argsort(scores[i, "heads"], descending=True, stable=True),
            torch.argsort(scores[i, "neurons"], descending=True, stable=True),
        )
