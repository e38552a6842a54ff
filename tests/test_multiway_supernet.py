"""The Multiway (BEiT-3-style) super-network: the vision path and its layers, the language experts an image
never runs, and loading a checkpoint in the official BEiT-3 layout (the interface every family shares:
tests/test_supernets.py).

The BEiT-3 checkpoint is written key by key in torchscale's layout (Multiway branch A = vision, B = language)
and the loaded network is compared with a forward pass written here from torchscale's BEiT-3 computation
(pre-norm, Sub-LN before out_proj and fc2, positions numbered from 2, fc_norm of the mean patch token).
"""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from simqnas.candidate import EvaluationSettings, evaluate_candidate
from simqnas.quantize import model_size_bytes, quantizable_layers
from simqnas.space import SearchSpace
from simqnas.supernets import build_supernet, resolve_space
from simqnas.supernets.multiway import MultiwaySuperNetwork
from tests.families import TINY, Family

HIDDEN, HEADS, FFN, LAYERS, PATCH, IMAGE, CLASSES, VOCAB = 8, 2, 12, 2, 4, 8, 3, 11
PATCHES = (IMAGE // PATCH) ** 2


def test_default_network_quantizes_the_vision_path_only():
    with torch.device("meta"):
        supernet = MultiwaySuperNetwork()
    layers = supernet.quantizable_layers()
    assert len(layers) == 74
    assert layers[:7] == [
        "beit3.embeddings.patch_embeddings.projection",
        "beit3.encoder.layer.0.attention.self.query",
        "beit3.encoder.layer.0.attention.self.key",
        "beit3.encoder.layer.0.attention.self.value",
        "beit3.encoder.layer.0.attention.output.dense",
        "beit3.encoder.layer.0.intermediate.dense",
        "beit3.encoder.layer.0.output.dense",
    ]
    assert layers[-1] == "head"
    every_linear = quantizable_layers(supernet)
    assert "beit3.encoder.layer.0.experts.language.intermediate.dense" in every_linear
    assert not [name for name in layers if "language" in name]


def test_the_documented_space_fits_the_default_network():
    with torch.device("meta"):
        supernet = MultiwaySuperNetwork()
    space = resolve_space(SearchSpace.from_yaml("config/spaces/multiway-fmnist.yaml"), supernet)
    assert space.quantization.layers == tuple(supernet.quantizable_layers())


def test_images_never_run_the_language_experts():
    family = Family("multiway")
    supernet = family.build()
    before = supernet(*family.inputs())
    with torch.no_grad():
        for name, parameter in supernet.named_parameters():
            if ".experts.language." in name:
                parameter.add_(1.0)
    torch.testing.assert_close(supernet(*family.inputs()), before)
    extracted = supernet.extract(supernet.largest_arch())
    assert not [name for name, _ in extracted.named_parameters() if "experts" in name]


# ---- the official BEiT-3 checkpoint layout


def beit3_state(seed: int = 0, final_layernorm: bool = False) -> dict[str, torch.Tensor]:
    """Every tensor of a BEiT3ForImageClassification checkpoint, random, named as torchscale names them."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int, mean: float = 0.0) -> torch.Tensor:
        return mean + 0.3 * torch.randn(shape, generator=generator)

    state = {
        "beit3.text_embed.weight": randn(VOCAB, HIDDEN),
        "beit3.vision_embed.mask_token": randn(1, 1, HIDDEN),
        "beit3.vision_embed.cls_token": randn(1, 1, HIDDEN),
        "beit3.vision_embed.proj.weight": randn(HIDDEN, 1, PATCH, PATCH),
        "beit3.vision_embed.proj.bias": randn(HIDDEN),
        "beit3.encoder.embed_positions.A.weight": randn(PATCHES + 1 + 2, HIDDEN),
        "beit3.encoder.embed_positions.B.weight": randn(10, HIDDEN),
        "fc_norm.weight": randn(HIDDEN, mean=1.0),
        "fc_norm.bias": randn(HIDDEN),
        "head.weight": randn(CLASSES, HIDDEN),
        "head.bias": randn(CLASSES),
    }
    for i in range(LAYERS):
        for branch in "AB":
            layer = f"beit3.encoder.layers.{i}."
            for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
                state[f"{layer}self_attn.{projection}.{branch}.weight"] = randn(HIDDEN, HIDDEN)
                state[f"{layer}self_attn.{projection}.{branch}.bias"] = randn(HIDDEN)
            for norm, size in (
                ("self_attn.inner_attn_ln", HIDDEN),
                ("self_attn_layer_norm", HIDDEN),
                ("final_layer_norm", HIDDEN),
                (f"ffn.{branch}.ffn_layernorm", FFN),
            ):
                name = norm if norm.startswith("ffn") else f"{norm}.{branch}"
                state[f"{layer}{name}.weight"] = randn(size, mean=1.0)
                state[f"{layer}{name}.bias"] = randn(size)
            state[f"{layer}ffn.{branch}.fc1.weight"] = randn(FFN, HIDDEN)
            state[f"{layer}ffn.{branch}.fc1.bias"] = randn(FFN)
            state[f"{layer}ffn.{branch}.fc2.weight"] = randn(HIDDEN, FFN)
            state[f"{layer}ffn.{branch}.fc2.bias"] = randn(HIDDEN)
    if final_layernorm:
        for branch in "AB":
            state[f"beit3.encoder.layer_norm.{branch}.weight"] = randn(HIDDEN, mean=1.0)
            state[f"beit3.encoder.layer_norm.{branch}.bias"] = randn(HIDDEN)
    return state


def beit3_logits(state: dict[str, torch.Tensor], pixel_values: torch.Tensor) -> torch.Tensor:
    """BEiT-3 image classification as torchscale computes it (vision branch A), eps 1e-5 everywhere."""

    def norm(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], 1e-5)

    def linear(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, state[f"{name}.weight"], state[f"{name}.bias"])

    x = F.conv2d(
        pixel_values, state["beit3.vision_embed.proj.weight"], state["beit3.vision_embed.proj.bias"], PATCH
    )
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["beit3.vision_embed.cls_token"].expand(len(x), -1, -1), x], dim=1)
    positions = torch.arange(2, x.shape[1] + 2)  # torchscale's PositionalEmbedding numbers from 2
    x = x + F.embedding(positions, state["beit3.encoder.embed_positions.A.weight"])
    batch, tokens, head_dim = x.shape[0], x.shape[1], HIDDEN // HEADS
    for i in range(LAYERS):
        layer = f"beit3.encoder.layers.{i}."
        h = norm(x, f"{layer}self_attn_layer_norm.A")
        q, k, v = (
            linear(h, f"{layer}self_attn.{p}_proj.A").view(batch, tokens, HEADS, head_dim).transpose(1, 2)
            for p in "qkv"
        )
        weights = torch.softmax((q * head_dim**-0.5) @ k.transpose(-1, -2), dim=-1)
        attention = (weights @ v).transpose(1, 2).reshape(batch, tokens, HIDDEN)
        x = x + linear(norm(attention, f"{layer}self_attn.inner_attn_ln.A"), f"{layer}self_attn.out_proj.A")
        h = F.gelu(linear(norm(x, f"{layer}final_layer_norm.A"), f"{layer}ffn.A.fc1"))
        x = x + linear(norm(h, f"{layer}ffn.A.ffn_layernorm"), f"{layer}ffn.A.fc2")
    if "beit3.encoder.layer_norm.A.weight" in state:
        x = norm(x, "beit3.encoder.layer_norm.A")
    return linear(norm(x[:, 1:].mean(dim=1), "fc_norm"), "head")


@pytest.mark.parametrize("final_layernorm", [False, True])
def test_beit3_checkpoint_loads_with_torchscales_logits(tmp_path, caplog, final_layernorm):
    state = beit3_state(final_layernorm=final_layernorm)
    path = tmp_path / "beit3_base_patch16_224.pth"
    torch.save({"model": state, "epoch": 3}, path)  # as BEiT-3's fine-tuning script saves it
    with caplog.at_level(logging.WARNING):
        network = MultiwaySuperNetwork.from_beit3_checkpoint(path, num_heads=HEADS).eval()
    hp = network.hyperparameters()
    assert (hp["num_layers"], hp["hidden_size"], hp["ffn_size"], hp["num_labels"]) == (
        LAYERS,
        HIDDEN,
        FFN,
        CLASSES,
    )
    assert (hp["patch_size"], hp["image_size"], hp["channels"]) == (PATCH, IMAGE, 1)
    assert hp["final_layernorm"] == final_layernorm and hp["experts"] == ["language"]
    assert "initialised fresh" not in caplog.text  # every weight of the network came from the checkpoint
    # what has no counterpart: the text embedding and positions, the language branch's attention
    assert "beit3.text_embed.weight" in caplog.text and "self_attn.q_proj.B.weight" in caplog.text
    assert "ffn.B.fc1" not in caplog.text  # the language FFN became the language expert
    torch.testing.assert_close(
        network.get_parameter("beit3.encoder.layer.1.experts.language.output.dense.weight"),
        state["beit3.encoder.layers.1.ffn.B.fc2.weight"],
    )
    pixel_values = Family("multiway").inputs()[0]
    with torch.no_grad():
        torch.testing.assert_close(
            network(pixel_values), beit3_logits(state, pixel_values), atol=1e-5, rtol=1e-5
        )


def test_beit3_checkpoint_through_the_workflow_config(tmp_path):
    from safetensors.torch import save_file

    state = beit3_state()
    save_file(state, str(tmp_path / "beit3.safetensors"))
    for name in ("a", "b", "c", "d"):
        (tmp_path / "images" / name).mkdir(parents=True)
    dataset = {"source": "image_folder", "path": str(tmp_path / "images"), "image_size": IMAGE, "channels": 1}
    spec = {
        "family": "multiway",
        "pretrained": str(tmp_path / "beit3.safetensors"),
        "architecture": {"num_heads": 2},
    }
    built = build_supernet(spec, dataset, seed=0).eval()
    assert built.hyperparameters()["num_labels"] == 4  # a fresh head for the dataset's classes
    reference = MultiwaySuperNetwork.from_beit3_checkpoint(tmp_path / "beit3.safetensors", num_heads=2).eval()
    pixel_values = Family("multiway").inputs()[0]
    with torch.no_grad():
        torch.testing.assert_close(built.encode(pixel_values), reference.encode(pixel_values))
    with pytest.raises(ValueError, match=r"beit3\.safetensors: image_size is 8, the dataset's is 28"):
        build_supernet(spec, {"kind": "image", "source": "fashion_mnist"}, seed=0)


def test_beit3_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pth: checkpoint not found"):
        MultiwaySuperNetwork.from_beit3_checkpoint(tmp_path / "missing.pth")
    torch.save(
        {"model": {"bert.embeddings.word_embeddings.weight": torch.zeros(2, 2)}}, tmp_path / "bert.pth"
    )
    with pytest.raises(ValueError, match=r"bert\.pth: not a BEiT-3 checkpoint \(no key"):
        MultiwaySuperNetwork.from_beit3_checkpoint(tmp_path / "bert.pth")
    torch.save({"model": {"x": torch.zeros(1)}, "args": object()}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match=r"pickled\.pth: not a readable weights-only torch file"):
        MultiwaySuperNetwork.from_beit3_checkpoint(tmp_path / "pickled.pth")


# ---- the paper's 72 genes: patch embedding and head at a fixed precision


def test_fixed_ends_leave_the_patch_embedding_and_head_out_of_the_search():
    paper_shape = {"hidden_size": 768, "ffn_size": 3072, "patch_size": 16, "image_size": 224, "channels": 3}
    space = SearchSpace.from_yaml("config/paper.yaml", supernet="beit3")
    with torch.device("meta"):
        fixed = MultiwaySuperNetwork(**paper_shape, fixed_ends="int8")
        searched = MultiwaySuperNetwork(**paper_shape)
    assert len(resolve_space(space, fixed).quantization.layers) == 72
    assert fixed.fixed_precisions() == {
        "beit3.embeddings.patch_embeddings.projection": "int8",
        "head": "int8",
    }
    with pytest.raises(ValueError, match="72 layers, the multiway super-network has 74"):
        resolve_space(space, searched)
    with pytest.raises(ValueError, match="fixed_ends: 'int4' is not one of int8, fp32 or null"):
        MultiwaySuperNetwork(fixed_ends="int4")


@pytest.mark.slow
def test_a_candidate_runs_its_fixed_layers_at_their_precision():
    family = Family("multiway")
    torch.manual_seed(0)
    supernet = MultiwaySuperNetwork(**TINY["multiway"], fixed_ends="fp32").eval()
    policy = dict.fromkeys(supernet.quantizable_layers(), "int8")
    arch = {"num_layers": [2], "num_heads": [2, 4, 1], "ffn_size": [8, 16, 4]}
    data = family.data(32, seed=1, labels_from=supernet)
    settings = EvaluationSettings(calibration_batch_size=8, eval_batch_size=16)
    # INC checks that the converted graph runs every layer at its policy's precision (fixed ones included)
    record = evaluate_candidate(supernet, arch, policy, data, data, settings)
    sub = supernet.extract(arch)
    expected = {**dict.fromkeys(quantizable_layers(sub), "int8"), **supernet.fixed_precisions()}
    assert record["size_bytes"] == model_size_bytes(sub, expected)
    assert record["size_bytes"] > model_size_bytes(sub, dict.fromkeys(expected, "int8"))
    assert 0 <= record["accuracy"] <= 1
