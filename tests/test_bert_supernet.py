"""The BERT super-network: module names, partial architectures, loading errors, and loading a real Hugging
Face checkpoint (the interface every family shares: tests/test_supernets.py)."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from simqnas.embedded import minilm_dir
from simqnas.space import SearchSpace
from simqnas.supernets import build_supernet, load_supernet, resolve_space
from simqnas.supernets.bert import BertSuperNetwork

TINY = {
    "num_layers": 3,
    "num_heads": 4,
    "ffn_size": 16,
    "hidden_size": 8,
    "vocab_size": 40,
    "max_position": 12,
}


def tiny() -> BertSuperNetwork:
    torch.manual_seed(0)
    return BertSuperNetwork(**TINY, sequence_length=6).eval()


def tiny_space(supernet: BertSuperNetwork) -> SearchSpace:
    return SearchSpace.from_dict(
        {
            "elastic": {
                "num_layers": {"count": 1, "choices": [1, 2, 3]},
                "num_heads": {"count": 3, "choices": [1, 2, 3, 4]},
                "ffn_size": {"count": 3, "choices": [3, 8, 16]},
            },
            "quantization": {"layers": supernet.quantizable_layers(), "choices": ["int8", "fp32"]},
        }
    )


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, TINY["vocab_size"], (4, 6), generator=generator)
    mask = torch.ones(4, 6, dtype=torch.long)
    mask[1, 2:] = 0
    return input_ids, mask


def linear_names(module: nn.Module) -> list[str]:
    return [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]


def test_quantizable_layers_are_every_linear_in_gene_order():
    supernet = tiny()
    layers = supernet.quantizable_layers()
    assert len(layers) == 6 * TINY["num_layers"] + 2
    assert sorted(layers) == sorted(linear_names(supernet))
    assert layers[:7] == [
        "bert.encoder.layer.0.attention.self.query",
        "bert.encoder.layer.0.attention.self.key",
        "bert.encoder.layer.0.attention.self.value",
        "bert.encoder.layer.0.attention.output.dense",
        "bert.encoder.layer.0.intermediate.dense",
        "bert.encoder.layer.0.output.dense",
        "bert.encoder.layer.1.attention.self.query",
    ]
    assert layers[-2:] == ["bert.pooler.dense", "classifier"]
    assert linear_names(supernet.extract(supernet.largest_arch())) == linear_names(supernet)


def test_partial_architecture_defaults_to_full_size_and_broadcasts():
    supernet = tiny()
    assert supernet.resolve({"num_heads": [2], "quantization": {"classifier": "int8"}}) == (
        3,
        [2, 2, 2],
        [16] * 3,
    )
    assert supernet.resolve(None) == (3, [4] * 3, [16] * 3)


def test_load_supernet_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors: super-network file not found"):
        load_supernet(missing)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"corrupt\.safetensors: not a readable safetensors file"):
        load_supernet(corrupt)
    unknown = tmp_path / "unknown.safetensors"
    save_file({"w": torch.zeros(1)}, str(unknown), metadata={"family": "lstm", "hyperparameters": "{}"})
    with pytest.raises(ValueError, match=r"unknown\.safetensors: unknown super-network family 'lstm'"):
        load_supernet(unknown)


def _write_hf_folder(folder, state: dict[str, torch.Tensor]) -> None:
    folder.mkdir()
    config = {
        "num_hidden_layers": TINY["num_layers"],
        "num_attention_heads": TINY["num_heads"],
        "intermediate_size": TINY["ffn_size"],
        "hidden_size": TINY["hidden_size"],
        "vocab_size": TINY["vocab_size"],
        "max_position_embeddings": TINY["max_position"],
        "type_vocab_size": 2,
        "hidden_act": "gelu",
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_file(state, str(folder / "model.safetensors"))


def test_from_pretrained_maps_bare_bert_keys_and_reports_fresh_ones(tmp_path, caplog):
    source = tiny()
    # a bare BertModel checkpoint: no `bert.` prefix, no classifier, an old position_ids buffer, a head
    state = {
        k.removeprefix("bert."): v for k, v in source.state_dict().items() if not k.startswith("classifier")
    }
    state["embeddings.position_ids"] = torch.arange(TINY["max_position"])[None]
    state["cls.predictions.bias"] = torch.zeros(TINY["vocab_size"])
    _write_hf_folder(tmp_path / "hf", state)
    with caplog.at_level(logging.WARNING):
        loaded = BertSuperNetwork.from_pretrained(tmp_path / "hf", num_labels=2).eval()
    assert "initialised fresh (not in the checkpoint): classifier.weight, classifier.bias" in caplog.text
    assert "not used by the network: cls.predictions.bias" in caplog.text
    for got, want in zip(loaded.encode(*batch()), source.encode(*batch()), strict=True):
        torch.testing.assert_close(got, want)


def test_from_pretrained_rejects_mismatched_shapes(tmp_path):
    state = dict(tiny().state_dict())
    state["bert.pooler.dense.weight"] = torch.zeros(3, 3)
    _write_hf_folder(tmp_path / "hf", state)
    with pytest.raises(ValueError, match=r"bert.pooler.dense.weight has shape \(3, 3\), expected \(8, 8\)"):
        BertSuperNetwork.from_pretrained(tmp_path / "hf")
    with pytest.raises(FileNotFoundError, match=r"nowhere/config\.json: not found"):
        BertSuperNetwork.from_pretrained(tmp_path / "nowhere")


def test_build_supernet_from_a_workflow_config_entry(tmp_path):
    _write_hf_folder(tmp_path / "hf", dict(tiny().state_dict()))
    built = build_supernet({"family": "bert", "pretrained": str(tmp_path / "hf")}, {"max_length": 5}, seed=0)
    assert isinstance(built, BertSuperNetwork)
    assert built.example_inputs(batch_size=3)[0].shape == (3, 5)
    with pytest.raises(ValueError, match="family: unknown super-network family 'lstm'"):
        build_supernet({"family": "lstm"}, {"max_length": 5}, seed=0)


def test_resolve_space_names_layers_and_checks_the_space_fits():
    supernet = tiny()
    named = resolve_space(tiny_space(supernet).with_layer_names([f"q{i}" for i in range(20)]), supernet)
    assert named.quantization.layers == tuple(supernet.quantizable_layers())
    assert resolve_space(named, supernet) == named
    spec = tiny_space(supernet).to_dict()
    with pytest.raises(
        ValueError, match=r"space\.quantization\.layers: 19 layers, the bert super-network has 20"
    ):
        resolve_space(
            SearchSpace.from_dict({**spec, "quantization": {"layers": 19, "choices": ["int8"]}}), supernet
        )
    renamed = {"layers": ["x", *supernet.quantizable_layers()[1:]], "choices": ["int8"]}
    with pytest.raises(ValueError, match=r"space\.quantization\.layers: unknown layer 'x'"):
        resolve_space(SearchSpace.from_dict({**spec, "quantization": renamed}), supernet)
    too_wide = {**spec["elastic"], "num_heads": {"count": 3, "choices": [2, 6]}}
    with pytest.raises(
        ValueError, match=r"space.elastic: .* num_heads\[0\]: 6 is not an integer in \[1, 4\]"
    ):
        resolve_space(SearchSpace.from_dict({**spec, "elastic": too_wide}), supernet)


def test_embedded_minilm_matches_hugging_face_bert(monkeypatch):
    """The key mapping is right: same hidden states and pooled output as transformers' own BertModel."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import BertModel

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    ours = BertSuperNetwork.from_pretrained(minilm_dir()).eval()
    reference = BertModel.from_pretrained(str(minilm_dir())).eval()
    input_ids = torch.randint(1000, 30000, (2, 10), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        expected = reference(input_ids=input_ids, attention_mask=mask)
        hidden, pooled = ours.encode(input_ids, mask)
    torch.testing.assert_close(hidden, expected.last_hidden_state, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(pooled, expected.pooler_output, atol=2e-5, rtol=1e-4)
    assert ours.quantizable_layers()[-1] == "classifier" and len(ours.quantizable_layers()) == 38


def test_mean_pooling_reads_the_unmasked_tokens_only():
    torch.manual_seed(0)
    supernet = BertSuperNetwork(**TINY, sequence_length=6, pooling="mean").eval()
    cls = BertSuperNetwork(**TINY, sequence_length=6).eval()
    cls.load_state_dict(supernet.state_dict())
    input_ids, mask = batch()
    logits = supernet(input_ids, mask)
    assert not torch.allclose(logits, cls(input_ids, mask))
    changed = input_ids.clone()
    changed[1, 2:] = (changed[1, 2:] + 1) % TINY["vocab_size"]  # masked positions only
    torch.testing.assert_close(supernet(changed, mask)[1], logits[1])
    hidden, pooled = supernet.encode(input_ids, mask)
    expected = hidden[1, :2].mean(dim=0)
    torch.testing.assert_close(pooled[1], torch.tanh(supernet.bert["pooler"]["dense"](expected)))
    # extraction and export keep it
    space = tiny_space(supernet)
    arch = space.decode(space.sample(1, np.random.default_rng(0))[0])
    supernet.set_active(arch)
    sub = supernet.extract(arch)
    torch.testing.assert_close(sub(input_ids, mask), supernet(input_ids, mask), atol=1e-5, rtol=1e-5)
    program = torch.export.export(sub, supernet.example_inputs(batch_size=2))
    torch.testing.assert_close(program.module()(*[t[:2] for t in batch()]), sub(*[t[:2] for t in batch()]))


def test_the_embedded_minilm_pools_the_mean_a_bert_folder_the_cls_state():
    dataset = {"max_length": 6}
    embedded = build_supernet({"family": "bert", "pretrained": None}, dataset, seed=0)
    assert embedded.hyperparameters()["pooling"] == "mean"
    chosen = {"family": "bert", "pretrained": None, "architecture": {"pooling": "cls"}}
    assert build_supernet(chosen, dataset, seed=0).hyperparameters()["pooling"] == "cls"
    with pytest.raises(ValueError, match="pooling: 'max' is not one of cls, mean"):
        BertSuperNetwork(**TINY, pooling="max")
