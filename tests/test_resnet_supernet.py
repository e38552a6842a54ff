"""The OFA-style ResNet super-network: extraction equals the active super-network, BatchNorm re-estimated and
folded for deployment, the paper's 62-layer gene order, ResNet50/101/152-shaped fixed networks, saving,
training from scratch, and loading an OFA-ResNet checkpoint."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from simqnas.config import check_config
from simqnas.nn.quantizable import quantizable_layers
from simqnas.nn.resnet import ConvBn, make_divisible, recalibrate_batchnorm_
from simqnas.space import SearchSpace
from simqnas.supernets import FAMILIES, build_supernet, load_supernet, resolve_space
from simqnas.supernets.resnet import ResNetSuperNetwork, ofa_key_to_static
from simqnas.training import predict, train_supernet, validation_accuracy
from tests.families import TINY_RESNET, image_batch, tiny_resnet, tiny_resnet_space

FASHION_MNIST = {"kind": "image", "source": "fashion_mnist"}


def _archs(network: ResNetSuperNetwork, n: int, seed: int = 0) -> list[dict]:
    space = tiny_resnet_space(network)
    return [space.decode(genome) for genome in space.sample(n, np.random.default_rng(seed))]


def test_resnet_is_a_registered_family():
    assert FAMILIES["resnet"] is ResNetSuperNetwork


def test_make_divisible_rounds_like_ofa():
    # OFA-ResNet50 channel counts: stem 64 * 0.65, bottleneck 256 * 0.35, 2048 * 0.2
    assert make_divisible(64 * 0.65, 8) == 40
    assert make_divisible(round(256 * 0.35), 8) == 88
    assert make_divisible(round(2048 * 0.2), 8) == 408
    assert make_divisible(3, 8) == 8  # never below the divisor
    assert make_divisible(9, 8) == 16  # never more than 10% below the value


def test_extracted_subnetworks_compute_the_active_supernetwork_logits():
    supernet = tiny_resnet()
    inputs = (image_batch(4, seed=1),)
    full_params = sum(p.numel() for p in supernet.parameters())
    for arch in _archs(supernet, 8):
        supernet.set_active(arch)
        expected = supernet(*inputs)
        sub = supernet.extract(arch)
        torch.testing.assert_close(sub(*inputs), expected, atol=1e-5, rtol=1e-5)
        assert sum(p.numel() for p in sub.parameters()) < full_params
        depth = arch["depth"]
        kept_blocks = 2 + depth[1] + depth[2]
        names = quantizable_layers(sub)
        assert set(names) <= set(supernet.quantizable_layers())
        # stem (2, or 3 with its residual conv) + 3 convs a block + 2 shortcut convs + classifier
        assert len(names) == 2 + depth[0] + 3 * kept_blocks + 2 + 1
        assert all(
            type(m) in (nn.Conv2d, nn.Linear) for m in sub.modules() if isinstance(m, nn.Conv2d | nn.Linear)
        )
    supernet.set_active(None)
    torch.testing.assert_close(supernet.extract(supernet.largest_arch())(*inputs), supernet(*inputs))


def test_dropped_blocks_keep_the_names_of_the_kept_ones():
    supernet = tiny_resnet()
    sub = supernet.extract({"depth": [0, 0, 1]})
    assert "input_stem.1.conv.conv" not in quantizable_layers(sub)
    assert "blocks.1.conv1.conv" not in quantizable_layers(sub)
    assert "blocks.3.conv1.conv" in quantizable_layers(sub)
    assert sub.get_submodule("blocks.2.downsample.conv").in_channels == 16


def test_deployable_subnetwork_re_estimates_batchnorm_and_folds_it():
    supernet = tiny_resnet()
    calibration = [(image_batch(16, seed=10 + i),) for i in range(3)]
    inputs = (image_batch(5, seed=2),)
    for arch in _archs(supernet, 4, seed=1):
        stale = supernet.extract(arch)(*inputs)
        deployed = supernet.deployable(supernet.extract(arch), calibration)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
        assert all(m.bias is not None for m in deployed.modules() if isinstance(m, nn.Conv2d))
        assert not deployed.training
        # the same statistics as the super-network re-estimated in that configuration, folded exactly
        supernet.set_active(arch)
        supernet.recalibrate_(calibration)
        torch.testing.assert_close(deployed(*inputs), supernet(*inputs), atol=1e-4, rtol=1e-4)
        assert not torch.allclose(deployed(*inputs), stale, atol=1e-3)  # the stale statistics were wrong
    supernet.set_active(None)


def test_recalibrated_statistics_are_the_average_of_the_batch_statistics():
    supernet = tiny_resnet()
    sub = supernet.extract({"depth": [0, 0, 0]})
    batches = [(image_batch(8, seed=i),) for i in range(2)]
    first = sub.input_stem["0"]
    means = []
    for (x,) in batches:
        with torch.no_grad():
            means.append(first.conv(x).mean(dim=(0, 2, 3)))
    recalibrate_batchnorm_(sub, batches)
    torch.testing.assert_close(first.bn.running_mean, (means[0] + means[1]) / 2, atol=1e-6, rtol=1e-5)
    assert first.bn.momentum == 0.1  # restored
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_batchnorm_(sub, [])


def test_folding_keeps_the_eval_mode_output():
    torch.manual_seed(0)
    layer = ConvBn(3, 5, 3, 2)
    with torch.no_grad():
        layer.bn.running_mean.uniform_(-1, 1)
        layer.bn.running_var.uniform_(0.5, 2)
        layer.bn.weight.uniform_(0.5, 2)
        layer.bn.bias.uniform_(-1, 1)
    layer.eval()
    x = torch.randn(2, 3, 9, 9)
    expected = layer(x)
    layer.fold_()
    assert isinstance(layer.bn, nn.Identity) and layer.conv.bias is not None
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_deployable_subnetwork_exports_without_elastic_control_flow():
    supernet = tiny_resnet()
    arch = _archs(supernet, 1, seed=3)[0]
    sub = supernet.deployable(supernet.extract(arch), [(image_batch(8, seed=4),)])
    program = torch.export.export(sub, supernet.example_inputs(batch_size=2))
    inputs = (image_batch(2, seed=5),)
    torch.testing.assert_close(program.module()(*inputs), sub(*inputs))


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ({"depth": [2]}, r"arch: depth\[0\]: 2 is not one of the network's \[0, 1\]"),
        ({"depth": [0.5]}, r"arch: depth\[0\]: 0.5 is not an integer"),
        ({"expand_ratio": [0.75]}, r"arch: expand_ratio\[0\]: 0.75 is not one of the network's \[0.5, 1.0\]"),
        ({"width_mult": [1.0, 0.5]}, r"arch: width_mult: expected a list of 1 or 4 values"),
        ({"num_layers": [2]}, r"arch: unknown parameter 'num_layers'"),
    ],
)
def test_invalid_architectures_name_the_parameter_and_value(arch, message):
    supernet = tiny_resnet()
    with pytest.raises(ValueError, match=message):
        supernet.set_active(arch)
    with pytest.raises(ValueError, match=message):
        supernet.extract(arch)


def test_the_paper_space_fits_ofa_resnet50_gene_by_gene():
    with torch.device("meta"):
        supernet = ResNetSuperNetwork()  # OFA-ResNet50's shape
    space = resolve_space(SearchSpace.from_yaml("config/spaces/paper/resnet.yaml"), supernet)
    layers = list(space.quantization.layers)
    assert layers == supernet.quantizable_layers() and len(layers) == 62
    assert layers[:7] == [
        "input_stem.0.conv",
        "input_stem.1.conv.conv",
        "input_stem.2.conv",
        "blocks.0.conv1.conv",
        "blocks.0.conv2.conv",
        "blocks.0.conv3.conv",
        "blocks.0.downsample.conv",
    ]
    assert layers[-1] == "classifier.linear"
    assert [layers[i] for i in (16, 29, 48)] == [f"blocks.{b}.conv1.conv" for b in (4, 8, 14)]
    # every depth unit of the space gates exactly the layers the network drops with it
    for group in space.depth:
        for k, unit in enumerate(group.units):
            quantization = dict(unit)["quantization"]
            below = max(0, group.start + k - 1)
            arch = {"depth": [2] * 5}
            arch["depth"][group.gene] = below
            layout = supernet.layout(arch)
            present = {str(b.index) for b in layout.blocks}
            gated = {layers[i] for i in quantization}
            if group.gene == 0:
                assert gated == {"input_stem.1.conv.conv"} and not layout.stem_residual
            else:
                assert {name.split(".")[1] for name in gated}.isdisjoint(present)
                assert all(name.startswith("blocks.") for name in gated)


def test_ofa_resnet50_channels():
    with torch.device("meta"):
        supernet = ResNetSuperNetwork()
    full, small = supernet.layout(None), supernet.layout(supernet.smallest_arch())
    assert (full.stem_mid, full.stem_out) == (32, 64)
    assert [b.out_channels for b in full.blocks[::6]] == [256, 512, 1024]
    assert full.blocks[0].mid_channels == 88 and full.blocks[-1].mid_channels == 720  # 0.35 expand
    assert len(full.blocks) == 18 and len(small.blocks) == 10  # [4, 4, 6, 4] and [2, 2, 4, 2]
    assert (small.stem_mid, small.stem_out, small.stem_residual) == (24, 40, False)
    assert small.blocks[0].mid_channels == make_divisible(round(168 * 0.2), 8)


@pytest.mark.parametrize(
    ("depths", "layers"), [([3, 4, 6, 3], 56), ([3, 4, 23, 3], 107), ([3, 8, 36, 3], 158)]
)
def test_fixed_resnet50_101_152_shapes(depths, layers):
    shape = {"depth_choices": [0], "expand_ratios": [0.25], "width_mults": [1.0]}
    with torch.device("meta"):
        network = ResNetSuperNetwork(base_depths=depths, **shape)
    # 3 stem convs, 3 per bottleneck block, 4 shortcut convs, the classifier
    assert len(network.quantizable_layers()) == layers == 3 + 3 * sum(depths) + 4 + 1
    assert network.largest_arch() == network.smallest_arch()
    layout = network.layout(None)
    assert [b.mid_channels for b in layout.blocks[:1]] == [64]  # ResNet50's first bottleneck: 256 / 4
    assert layout.stem_residual
    space = resolve_space(
        SearchSpace.from_dict({"quantization": {"layers": layers, "choices": ["int8", "fp32"]}}), network
    )
    assert space.quantization.layers == tuple(network.quantizable_layers())


def test_build_for_fashion_mnist_from_the_architecture_entry():
    spec = {
        "family": "resnet",
        "pretrained": None,
        "architecture": {"stem_channels": 16, "stage_widths": [32, 64, 128, 256], "stem_stride": 1},
    }
    built = build_supernet(spec, FASHION_MNIST, seed=0)
    hp = built.hyperparameters()
    assert (hp["stem_channels"], hp["num_labels"], hp["channels"], hp["image_size"]) == (16, 10, 1, 28)
    assert built.example_inputs(batch_size=3)[0].shape == (3, 1, 28, 28)
    assert built(*built.example_inputs(batch_size=2)).shape == (2, 10)


def test_save_and_load_round_trip(tmp_path):
    supernet = tiny_resnet()
    path = tmp_path / "supernet.safetensors"
    supernet.save(path)
    loaded = load_supernet(path).eval()
    assert type(loaded) is ResNetSuperNetwork
    assert loaded.hyperparameters() == supernet.hyperparameters()
    arch = _archs(supernet, 1, seed=7)[0]
    supernet.set_active(arch)
    loaded.set_active(arch)
    torch.testing.assert_close(loaded(image_batch(3, seed=1)), supernet(image_batch(3, seed=1)))


def _data(rows: int, seed: int, teacher: nn.Module) -> dict[str, torch.Tensor]:
    pixels = image_batch(rows, seed)
    with torch.no_grad():
        labels = teacher(pixels).argmax(-1)
    return {"pixel_values": pixels, "labels": labels}


def test_training_from_scratch_reduces_the_loss_and_validates_recalibrated():
    teacher = tiny_resnet(seed=5)
    train, validation = _data(96, 1, teacher), _data(32, 2, teacher)
    supernet = tiny_resnet()
    space = resolve_space(tiny_resnet_space(supernet), supernet)
    smallest = supernet.smallest_arch()
    supernet.set_active(smallest)
    before = F.cross_entropy(predict(supernet, train), train["labels"])
    settings = {"epochs": 3, "batch_size": 16, "lr": 3e-3, "seed": 0, "max_steps_per_epoch": None}
    metrics = train_supernet(supernet, None, space, train, validation, **settings)
    supernet.set_active(smallest)
    assert F.cross_entropy(predict(supernet, train), train["labels"]) < before
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    # the reported accuracy is the deployed sub-network's: statistics re-estimated on training rows
    reported = validation_accuracy(supernet, smallest, train, validation)
    assert reported == metrics[-1]["smallest_accuracy"]
    rows = [(train["pixel_values"][i : i + 64],) for i in range(0, 96, 64)]
    deployed = supernet.deployable(supernet.extract(smallest), rows)
    assert reported == float((predict(deployed, validation).argmax(1) == validation["labels"]).float().mean())


def test_a_fixed_network_trains_once_per_step():
    teacher = tiny_resnet(seed=5)
    train, validation = _data(32, 1, teacher), _data(16, 2, teacher)
    network = ResNetSuperNetwork(
        **{**TINY_RESNET, "depth_choices": [0], "expand_ratios": [1.0], "width_mults": [1.0]}
    )
    space = resolve_space(
        SearchSpace.from_dict({"quantization": {"layers": 12, "choices": ["int8", "fp32"]}}), network
    )
    calls = []
    network.register_forward_hook(lambda *_: calls.append(1))
    settings = {"epochs": 1, "batch_size": 16, "lr": 1e-3, "seed": 0, "max_steps_per_epoch": None}
    train_supernet(network, None, space, train, validation, subnets_per_step=0, **settings)
    # 2 steps of one forward each (the largest is the smallest), then for the largest and the smallest
    # 2 recalibration batches and 1 validation batch
    assert len(calls) == 2 + 2 * (2 + 1)


def _ofa_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict under OFA's dynamic-module names (what OFAResNets.state_dict() writes)."""
    renamed = {}
    for key, value in state.items():
        if key.endswith(".conv.weight"):
            key = key.removesuffix(".conv.weight") + ".conv.conv.weight"
        key = key.replace(".bn.", ".bn.bn.").replace("classifier.linear.", "classifier.linear.linear.")
        renamed[key] = value
    return renamed


@pytest.mark.parametrize("layout", ["ofa_dynamic", "static", "dataparallel"])
def test_ofa_checkpoint_loads_with_the_same_logits(tmp_path, layout):
    source = tiny_resnet(seed=3)
    state = source.state_dict()
    if layout == "ofa_dynamic":
        saved = {"state_dict": _ofa_layout(state)}
        assert "input_stem.1.conv.conv.conv.weight" in saved["state_dict"]
        assert "blocks.0.downsample.bn.bn.running_mean" in saved["state_dict"]
        assert "classifier.linear.linear.weight" in saved["state_dict"]
    elif layout == "static":
        saved = dict(state)
    else:
        saved = {"state_dict": {f"module.{k}": v for k, v in _ofa_layout(state).items()}}
    path = tmp_path / "ofa_resnet.pth"
    torch.save(saved, path)
    shape = {k: v for k, v in TINY_RESNET.items() if k != "num_labels"}
    loaded = ResNetSuperNetwork.from_ofa_checkpoint(path, **shape).eval()
    assert loaded.hyperparameters()["num_labels"] == 3
    for arch in [None, *_archs(source, 3, seed=2)]:
        source.set_active(arch)
        loaded.set_active(arch)
        torch.testing.assert_close(loaded(image_batch(2, seed=9)), source(image_batch(2, seed=9)))


def test_ofa_checkpoint_for_another_task_gets_a_fresh_classifier(tmp_path, caplog):
    source = tiny_resnet(seed=3)
    path = tmp_path / "ofa_resnet.pth"
    torch.save({"state_dict": _ofa_layout(source.state_dict())}, path)
    shape = {k: v for k, v in TINY_RESNET.items() if k != "num_labels"}
    with caplog.at_level(logging.WARNING):
        loaded = ResNetSuperNetwork.from_ofa_checkpoint(path, num_labels=5, **shape)
    assert loaded.classifier["linear"].out_features == 5
    assert "classifier.linear.weight" in caplog.text
    torch.testing.assert_close(loaded.input_stem["0"].conv.weight, source.input_stem["0"].conv.weight)


def test_ofa_checkpoint_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "ofa_resnet.pth"
    torch.save({"state_dict": _ofa_layout(tiny_resnet().state_dict())}, path)
    shape = {k: v for k, v in TINY_RESNET.items() if k != "num_labels"}
    with pytest.raises(ValueError, match=r"ofa_resnet.pth: input_stem.0.conv.weight has shape"):
        ResNetSuperNetwork.from_ofa_checkpoint(path, **{**shape, "stem_channels": 16})
    torch.save({"state_dict": {"features.0.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match=r"ofa_resnet\.pth: not an OFA-ResNet checkpoint"):
        ResNetSuperNetwork.from_ofa_checkpoint(path, **shape)


def test_ofa_key_names_map_to_the_static_ones():
    assert ofa_key_to_static("input_stem.1.conv.conv.conv.weight") == "input_stem.1.conv.conv.weight"
    assert ofa_key_to_static("blocks.3.conv2.bn.bn.running_var") == "blocks.3.conv2.bn.running_var"
    assert ofa_key_to_static("classifier.linear.linear.bias") == "classifier.linear.bias"
    assert ofa_key_to_static("blocks.3.conv2.conv.weight") == "blocks.3.conv2.conv.weight"


def test_ofa_checkpoint_through_the_workflow_config(tmp_path):
    source = tiny_resnet(seed=3)
    torch.save({"state_dict": _ofa_layout(source.state_dict())}, tmp_path / "ofa_resnet.pth")
    for name in ("a", "b", "c", "d"):
        (tmp_path / "images" / name).mkdir(parents=True)
    dataset = {"source": "image_folder", "path": str(tmp_path / "images"), "image_size": 8, "channels": 1}
    architecture = {k: v for k, v in TINY_RESNET.items() if k not in ("num_labels", "image_size", "channels")}
    spec = {"family": "resnet", "pretrained": str(tmp_path / "ofa_resnet.pth"), "architecture": architecture}
    built = build_supernet(spec, dataset, seed=0).eval()
    assert built.hyperparameters()["num_labels"] == 4  # a fresh classifier for the dataset's classes
    for key, value in source.state_dict().items():
        if not key.startswith("classifier."):
            assert torch.equal(built.state_dict()[key], value), key


def test_the_paper_config_resnet_rows_are_valid(tmp_path):
    config = yaml_config("config/paper.yaml")
    resnet = config["supernets"]["resnet"]
    assert (resnet["family"], resnet["pretrained"]) == ("resnet", "models/ofa_resnet50.pth")
    assert resnet["references"] == ["resnet50", "resnet101", "resnet152"]
    assert resnet["training"]["epochs"] == 0
    for name, layers in (("resnet50", 56), ("resnet101", 107), ("resnet152", 158)):
        spec = config["supernets"][name]
        with torch.device("meta"):
            network = ResNetSuperNetwork(**spec["architecture"])
        assert len(network.quantizable_layers()) == layers == spec["space"]["quantization"]["layers"]
    # the schema accepts the rows; the first missing user file is what stops it
    with pytest.raises(ValueError, match=r"datasets\.sst2\.path: not found"):
        check_config(config, tmp_path)


def yaml_config(path: str) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)
