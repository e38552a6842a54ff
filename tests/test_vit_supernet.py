"""The ViT super-network: module names and gene order, building for a dataset, and loading a Hugging Face
ViT folder (the interface every family shares, training from scratch included: tests/test_supernets.py)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import save_file

from simqnas.space import SearchSpace
from simqnas.supernets import build_supernet, resolve_space
from simqnas.supernets.vit import VitSuperNetwork
from tests.families import TINY, Family

FASHION_MNIST = {"kind": "image", "source": "fashion_mnist"}


def test_default_network_has_the_documented_74_quantizable_layers():
    with torch.device("meta"):
        supernet = VitSuperNetwork()
    layers = supernet.quantizable_layers()
    assert len(layers) == 74
    assert layers[:8] == [
        "vit.embeddings.patch_embeddings.projection",
        "vit.encoder.layer.0.attention.self.query",
        "vit.encoder.layer.0.attention.self.key",
        "vit.encoder.layer.0.attention.self.value",
        "vit.encoder.layer.0.attention.output.dense",
        "vit.encoder.layer.0.intermediate.dense",
        "vit.encoder.layer.0.output.dense",
        "vit.encoder.layer.1.attention.self.query",
    ]
    assert layers[-1] == "classifier"
    hp = supernet.hyperparameters()
    assert (hp["hidden_size"], hp["num_heads"], hp["ffn_size"], hp["patch_size"]) == (192, 12, 768, 4)


def test_the_documented_space_fits_the_default_network():
    with torch.device("meta"):
        supernet = VitSuperNetwork()
    space = resolve_space(SearchSpace.from_yaml("config/spaces/vit-fmnist.yaml"), supernet)
    assert space.quantization.layers == tuple(supernet.quantizable_layers())


def test_build_for_fashion_mnist_from_the_architecture_entry():
    spec = {"family": "vit", "pretrained": None, "architecture": {"num_layers": 2, "hidden_size": 24}}
    built = build_supernet(spec, FASHION_MNIST, seed=0)
    assert isinstance(built, VitSuperNetwork)
    hp = built.hyperparameters()
    assert (hp["num_layers"], hp["hidden_size"], hp["num_labels"], hp["channels"]) == (2, 24, 10, 1)
    assert built.example_inputs(batch_size=3)[0].shape == (3, 1, 28, 28)
    again = build_supernet(spec, FASHION_MNIST, seed=0)
    for key, value in built.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    with pytest.raises(ValueError, match="num_heads: 5 does not divide hidden_size 24"):
        build_supernet({**spec, "architecture": {"hidden_size": 24, "num_heads": 5}}, FASHION_MNIST, seed=0)


# ---- Hugging Face ViT folders (transformers writes the exact layout; nothing is downloaded)


def _hf_vit(tmp_path, num_labels: int = 3):
    from transformers import ViTConfig, ViTForImageClassification

    spec = TINY["vit"]
    config = ViTConfig(
        hidden_size=spec["hidden_size"],
        num_hidden_layers=spec["num_layers"],
        num_attention_heads=spec["num_heads"],
        intermediate_size=spec["ffn_size"],
        image_size=spec["image_size"],
        patch_size=spec["patch_size"],
        num_channels=spec["channels"],
        num_labels=num_labels,
        layer_norm_eps=1e-6,
    )
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    with torch.no_grad():  # HF initialises LayerNorms to identity: make them count in the comparison
        for name, parameter in model.named_parameters():
            if "layernorm" in name:
                parameter.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
    model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    return model


def test_hugging_face_vit_folder_loads_with_the_same_logits(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reference = _hf_vit(tmp_path)
    loaded = VitSuperNetwork.from_pretrained(tmp_path / "hf").eval()
    assert loaded.hyperparameters()["eps"] == 1e-6 and loaded.hyperparameters()["num_labels"] == 3
    pixel_values = Family("vit").inputs()[0]
    with torch.no_grad():
        expected = reference(pixel_values=pixel_values).logits
    torch.testing.assert_close(loaded(pixel_values), expected, atol=1e-5, rtol=1e-5)
    # and through the workflow's entry point, for a dataset of other classes: a fresh head, the same body
    folder = _class_folders(tmp_path, 5)
    dataset = {"source": "image_folder", "path": str(folder), "image_size": 8, "channels": 1}
    built = build_supernet({"family": "vit", "pretrained": str(tmp_path / "hf")}, dataset, seed=0).eval()
    assert built.hyperparameters()["num_labels"] == 5
    with torch.no_grad():
        torch.testing.assert_close(built.encode(pixel_values), loaded.encode(pixel_values))


def _class_folders(tmp_path, count: int):
    root = tmp_path / "images"
    for i in range(count):
        (root / f"class{i}").mkdir(parents=True)
    return root


def test_hugging_face_vit_errors_name_the_file_and_key(tmp_path, caplog):
    _hf_vit(tmp_path)
    with pytest.raises(ValueError, match=r"config\.json: image_size is 8, the dataset's is 28"):
        build_supernet({"family": "vit", "pretrained": str(tmp_path / "hf")}, FASHION_MNIST, seed=0)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps(config))
    # a bare ViTModel checkpoint (no `vit.` prefix, no head) with a pooler the classifier does not use
    state = {
        key.removeprefix("vit."): value
        for key, value in VitSuperNetwork.from_pretrained(tmp_path / "hf").state_dict().items()
        if not key.startswith("classifier")
    }
    state = {key.replace(".attention.self.", ".attention.attention."): value for key, value in state.items()}
    state["pooler.dense.weight"] = torch.zeros(8, 8)
    save_file(state, str(bare / "model.safetensors"))
    with caplog.at_level(logging.WARNING):
        VitSuperNetwork.from_pretrained(bare, num_labels=4)
    assert "initialised fresh (not in the checkpoint): classifier.weight, classifier.bias" in caplog.text
    assert "not used by the network: pooler.dense.weight" in caplog.text
    state["encoder.layer.0.output.dense.weight"] = torch.zeros(3, 3)
    save_file(state, str(bare / "model.safetensors"))
    with pytest.raises(ValueError, match=r"encoder\.layer\.0\.output\.dense\.weight has shape \(3, 3\)"):
        VitSuperNetwork.from_pretrained(bare)
