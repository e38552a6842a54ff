"""Elastic transformer blocks: slicing, static extraction, function-preserving reordering."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simqnas.nn.elastic import (
    ElasticLinear,
    Encoder,
    TransformerLayer,
    attention_bias,
    copy_prefix_weights,
    reorder_by_importance_,
)

HIDDEN, HEADS, HEAD_DIM, FFN = 12, 4, 3, 10


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def layer(norm_first: bool = False) -> TransformerLayer:
    return TransformerLayer(HIDDEN, HEADS, FFN, head_dim=HEAD_DIM, norm_first=norm_first).eval()


def inputs(batch: int = 3, tokens: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.ones(batch, tokens, dtype=torch.long)
    mask[0, 3:] = 0
    return torch.randn(batch, tokens, HIDDEN), attention_bias(mask, torch.float32)


def test_elastic_linear_uses_leading_slice_and_extracts_plain_linear():
    linear = ElasticLinear(6, 5)
    x = torch.randn(2, 6)
    linear.set_active(in_features=4, out_features=3)
    expected = x[:, :4] @ linear.weight[:3, :4].T + linear.bias[:3]
    torch.testing.assert_close(linear(x[:, :4]), expected)
    static = linear.static()
    assert type(static) is nn.Linear
    assert (static.in_features, static.out_features) == (4, 3)
    torch.testing.assert_close(static(x[:, :4]), expected)
    linear.set_active()
    assert linear(x).shape == (2, 5)


@pytest.mark.parametrize("bad", [0, 7, True, 2.0])
def test_elastic_linear_rejects_sizes_outside_the_layer(bad):
    with pytest.raises(ValueError, match=r"out_features: .* not an integer in \[1, 5\]"):
        ElasticLinear(6, 5).set_active(out_features=bad)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize(("heads", "ffn"), [(4, 10), (1, 1), (2, 7), (3, 10)])
def test_extracted_layer_matches_active_layer_and_is_smaller(norm_first, heads, ffn):
    elastic = layer(norm_first)
    x, bias = inputs()
    elastic.set_active(heads, ffn)
    static = elastic.extract()
    torch.testing.assert_close(static(x, bias), elastic(x, bias), atol=1e-6, rtol=1e-5)
    assert not any(isinstance(m, ElasticLinear) for m in static.modules())
    linears = {n: m for n, m in static.named_modules() if isinstance(m, nn.Linear)}
    assert linears["attention.self.query"].out_features == heads * HEAD_DIM
    assert linears["attention.output.dense"].in_features == heads * HEAD_DIM
    assert linears["intermediate.dense"].out_features == ffn
    assert linears["output.dense"].in_features == ffn
    full = sum(p.numel() for p in elastic.parameters())
    assert sum(p.numel() for p in static.parameters()) <= full
    if (heads, ffn) != (HEADS, FFN):
        assert sum(p.numel() for p in static.parameters()) < full


def test_layer_names_mirror_hugging_face_bert_and_vit():
    post = {n for n, _ in layer().named_parameters()}
    assert {
        "attention.self.query.weight",
        "attention.output.LayerNorm.weight",
        "output.LayerNorm.bias",
    } <= post
    pre = {n for n, _ in layer(norm_first=True).named_parameters()}
    assert {"layernorm_before.weight", "layernorm_after.bias", "intermediate.dense.weight"} <= pre
    assert not any("LayerNorm" in n for n in pre)


def test_encoder_runs_the_first_layers_only():
    layers = [layer() for _ in range(3)]
    encoder = Encoder(layers).eval()
    x, bias = inputs()
    encoder.set_active(2)
    torch.testing.assert_close(encoder(x, bias), layers[1](layers[0](x, bias), bias))
    with pytest.raises(ValueError, match="num_layers: 4"):
        encoder.set_active(4)


@pytest.mark.parametrize("norm_first", [False, True])
def test_permutation_keeps_the_function(norm_first):
    elastic = layer(norm_first)
    x, bias = inputs()
    before = elastic(x, bias)
    elastic.permute_(torch.randperm(HEADS), torch.randperm(FFN))
    torch.testing.assert_close(elastic(x, bias), before, atol=1e-6, rtol=1e-5)


def test_reorder_by_importance_keeps_the_function_and_sorts():
    encoder = Encoder([layer(), layer()]).eval()
    x, bias = inputs()
    target = torch.randn(3, 5, HIDDEN)
    before = encoder(x, bias).detach()

    def loss() -> torch.Tensor:
        return ((encoder(x, bias) - target) ** 2).mean()

    reorder_by_importance_(encoder, [loss, loss])
    torch.testing.assert_close(encoder(x, bias), before, atol=1e-6, rtol=1e-5)
    assert all(p.grad is None for p in encoder.parameters())
    sorted_state = {k: v.clone() for k, v in encoder.state_dict().items()}
    # already sorted: a second pass finds the identity order
    reorder_by_importance_(encoder, [loss, loss])
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(value, sorted_state[key], msg=key)


def test_copy_prefix_weights_names_the_offending_key():
    with pytest.raises(KeyError, match=r"extra\.weight"):
        copy_prefix_weights(nn.Module(), nn.ModuleDict({"extra": nn.Linear(2, 2)}))
    with pytest.raises(ValueError, match=r"weight: target shape \(3, 2\) is not a slice of \(2, 2\)"):
        copy_prefix_weights(nn.Linear(2, 2), nn.Linear(2, 3))


def multiway_layer() -> TransformerLayer:
    return TransformerLayer(
        HIDDEN, HEADS, FFN, head_dim=HEAD_DIM, norm_first=True, sub_layernorm=True, experts=("language",)
    ).eval()


@pytest.mark.parametrize(("heads", "ffn"), [(4, 10), (1, 1), (2, 7)])
def test_multiway_layer_extracts_each_expert_path(heads, ffn):
    elastic = multiway_layer()
    with torch.no_grad():  # LayerNorms start as identity: make the Sub-LNs count
        for module in elastic.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.normal_(1.0, 0.2)
    x, bias = inputs()
    elastic.set_active(heads, ffn)
    static = elastic.extract()
    for expert in (None, "language"):
        torch.testing.assert_close(static(x, bias, expert), elastic(x, bias, expert), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(elastic(x, bias, "language"), elastic(x, bias))
    assert static.attention["output"]["sub_layernorm"].normalized_shape == (heads * HEAD_DIM,)
    assert static.experts["language"]["output"]["sub_layernorm"].normalized_shape == (ffn,)
    vision = elastic.extract(keep_experts=False)
    assert not hasattr(vision, "experts")
    torch.testing.assert_close(vision(x, bias), elastic(x, bias), atol=1e-6, rtol=1e-5)


def test_multiway_permutation_keeps_both_paths():
    elastic = multiway_layer()
    x, bias = inputs()
    before = {expert: elastic(x, bias, expert) for expert in (None, "language")}
    elastic.permute_(torch.randperm(HEADS), torch.randperm(FFN))
    for expert, output in before.items():
        torch.testing.assert_close(elastic(x, bias, expert), output, atol=1e-6, rtol=1e-5)


def test_multiway_options_need_a_pre_norm_layer():
    with pytest.raises(ValueError, match="sub_layernorm and experts need norm_first"):
        TransformerLayer(HIDDEN, HEADS, FFN, head_dim=HEAD_DIM, experts=("language",))
