"""The SuperNetwork interface, for every family: extraction equals the active super-network, quantizable
layers, export, validation, (de)serialization, sandwich training from scratch without a teacher."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from simqnas.quantize import quantizable_layers
from simqnas.supernets import FAMILIES, load_supernet, resolve_space
from simqnas.training import predict, train_supernet
from tests.families import FAMILY_NAMES, TINY, Family


@pytest.fixture(params=FAMILY_NAMES)
def family(request) -> Family:
    return Family(request.param)


def test_every_family_is_registered(family):
    assert FAMILIES[family.name].family == family.name


def test_extracted_subnetworks_compute_the_active_supernetwork_logits(family):
    supernet = family.build()
    space = family.space(supernet)
    quantizable = supernet.quantizable_layers()
    per_layer = 6
    outside_encoder = len(quantizable) - per_layer * TINY[family.name]["num_layers"]
    full_params = sum(p.numel() for p in supernet.parameters())
    inputs = family.inputs()
    for genome in space.sample(6, np.random.default_rng(0)):
        arch = space.decode(genome)
        supernet.set_active(arch)
        expected = supernet(*inputs)
        sub = supernet.extract(arch)
        torch.testing.assert_close(sub(*inputs), expected, atol=1e-5, rtol=1e-5)
        assert sum(p.numel() for p in sub.parameters()) < full_params
        names = quantizable_layers(sub)
        assert set(names) <= set(quantizable)
        assert len(names) == per_layer * arch["num_layers"][0] + outside_encoder
        assert all(type(m) is nn.Linear for m in sub.modules() if isinstance(m, nn.Linear))
    supernet.set_active(None)
    torch.testing.assert_close(supernet.extract(supernet.largest_arch())(*inputs), supernet(*inputs))


def test_quantizable_layers_are_the_extracted_networks_linear_and_conv_layers(family):
    supernet = family.build()
    layers = supernet.quantizable_layers()
    assert layers == quantizable_layers(supernet.extract(supernet.largest_arch()))
    assert len(layers) == len(set(layers))


def test_extracted_subnetwork_exports_without_elastic_control_flow(family):
    supernet = family.build()
    arch = {"num_layers": [2], "num_heads": [3, 1, 4], "ffn_size": [5, 16, 1]}
    sub = supernet.extract(arch)
    program = torch.export.export(sub, supernet.example_inputs(batch_size=2))
    inputs = tuple(t[:2] for t in family.inputs())  # the exported shape, other values
    torch.testing.assert_close(program.module()(*inputs), sub(*inputs))


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ({"num_heads": [5]}, r"arch: num_heads\[0\]: 5 is not an integer in \[1, 4\]"),
        ({"num_layers": [0]}, r"arch: num_layers\[0\]: 0 is not an integer in \[1, 3\]"),
        ({"ffn_size": [16, 17, 16]}, r"arch: ffn_size\[1\]: 17 is not an integer in \[1, 16\]"),
        ({"ffn_size": [8.0]}, r"arch: ffn_size\[0\]: 8.0 is not an integer"),
        ({"num_heads": [1, 2]}, r"arch: num_heads: expected a list of 1 or 3 values"),
        ({"hidden_size": [8]}, r"arch: unknown parameter 'hidden_size'"),
    ],
)
def test_invalid_architectures_name_the_parameter_and_value(family, arch, message):
    supernet = family.build()
    with pytest.raises(ValueError, match=message):
        supernet.set_active(arch)
    with pytest.raises(ValueError, match=message):
        supernet.extract(arch)


def test_save_and_load_round_trip(family, tmp_path):
    supernet = family.build()
    path = tmp_path / "supernet.safetensors"
    supernet.save(path)
    loaded = load_supernet(path).eval()
    assert type(loaded) is type(supernet)
    assert loaded.hyperparameters() == supernet.hyperparameters()
    arch = {"num_layers": [2], "num_heads": [2, 3, 1], "ffn_size": [4, 4, 4]}
    supernet.set_active(arch)
    loaded.set_active(arch)
    torch.testing.assert_close(loaded(*family.inputs()), supernet(*family.inputs()))
    assert json.loads(json.dumps(supernet.hyperparameters())) == supernet.hyperparameters()


def test_training_from_scratch_without_a_teacher_reduces_the_loss(family):
    teacher = family.build(seed=5)  # labels a fixed random network assigns: learnable by the student
    train = family.data(96, seed=1, labels_from=teacher)
    validation = family.data(32, seed=2, labels_from=teacher)
    supernet = family.build()
    space = resolve_space(family.space(supernet), supernet)
    smallest = {"num_layers": [1], "num_heads": [1] * 3, "ffn_size": [3] * 3}
    supernet.set_active(smallest)
    before = F.cross_entropy(predict(supernet, train), train["labels"])
    settings = {"epochs": 4, "batch_size": 16, "lr": 3e-3, "seed": 0, "max_steps_per_epoch": None}
    metrics = train_supernet(supernet, None, space, train, validation, **settings)
    supernet.set_active(smallest)
    assert F.cross_entropy(predict(supernet, train), train["labels"]) < before
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
