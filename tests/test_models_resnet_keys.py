"""torchvision <-> transformers ResNet weights: names, shapes and, above all, identical outputs.

The reference is torchvision's ResNet forward written out with torch.nn.functional (torchvision itself
is not a dependency), so a mapping that put a stride or a batch norm in the wrong place would show
up as different features, not just as a key that happens to load.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from hecvl.config.model import VisualConfig
from hecvl.errors import HecvlError
from hecvl.models.resnet_keys import (
    find_resnet_prefix,
    hf_key_to_torchvision,
    hf_to_torchvision,
    torchvision_key_to_hf,
    torchvision_to_hf,
)
from hecvl.models.visual_encoder import VisualEncoder, load_resnet_weights

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def torchvision_resnet50_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's resnet50 state dict, written from its definition (docs §2)."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(name: str, c: int) -> None:
        for p in BN:
            shapes[f"{name}.{p}"] = () if p == "num_batches_tracked" else (c,)

    bn("bn1", 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True), start=1):
        for m in range(blocks):
            p = f"layer{stage}.{m}"
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if m == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    shapes["fc.weight"], shapes["fc.bias"] = (1000, 2048), (1000,)
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights at sane scales (He-initialised convs, BN near identity) so outputs stay finite."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7, dtype=torch.int64)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            out[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif key.endswith(".weight") and "fc" not in key:
            out[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            out[key] = 0.1 * torch.randn(shape, generator=g)
    return out


def torchvision_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """torchvision ResNet (v1.5: stride on the 3x3 of a bottleneck) in eval mode, pooled to (N, C)."""

    def bn(name: str, y: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(y, sd[f"{name}.running_mean"], sd[f"{name}.running_var"],
                            sd[f"{name}.weight"], sd[f"{name}.bias"], training=False, eps=1e-5)

    y = F.relu(bn("bn1", F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)))
    y = F.max_pool2d(y, 3, stride=2, padding=1)
    stage = 1
    while f"layer{stage}.0.conv1.weight" in sd:
        m = 0
        while f"layer{stage}.{m}.conv1.weight" in sd:
            p = f"layer{stage}.{m}"
            stride = 2 if stage > 1 and m == 0 else 1
            bottleneck = f"{p}.conv3.weight" in sd
            out = y
            for k in (1, 2, 3) if bottleneck else (1, 2):
                w = sd[f"{p}.conv{k}.weight"]
                s = stride if (k == 2 if bottleneck else k == 1) else 1
                out = bn(f"{p}.bn{k}", F.conv2d(out, w, stride=s, padding=w.shape[-1] // 2))
                if k < (3 if bottleneck else 2):
                    out = F.relu(out)
            short = y
            if f"{p}.downsample.0.weight" in sd:
                short = bn(f"{p}.downsample.1", F.conv2d(y, sd[f"{p}.downsample.0.weight"], stride=stride))
            y = F.relu(out + short)
            m += 1
        stage += 1
    return y.mean((2, 3))


@pytest.fixture(scope="module")
def tv50() -> dict[str, torch.Tensor]:
    return random_state(torchvision_resnet50_shapes())


@pytest.fixture(scope="module")
def tv50_file(tv50, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("rn50") / "resnet50_imagenet.pth"
    torch.save(tv50, path)
    return str(path)


@pytest.fixture(scope="module")
def resnet50(tv50_file) -> VisualEncoder:
    """The one ResNet-50 this file builds: initialised from the torchvision-layout file."""
    return VisualEncoder(VisualConfig(preset="resnet50", weights=tv50_file)).eval()


def test_documented_resnet50_layout_maps_one_to_one(tv50):
    assert len(tv50) == 320  # 318 + fc.weight, fc.bias
    hf = torchvision_to_hf(tv50)
    assert len(hf) == 318 and sum(k.endswith("num_batches_tracked") for k in hf) == 53
    assert hf["encoder.stages.0.layers.0.layer.2.convolution.weight"].shape == (256, 64, 1, 1)
    assert hf["encoder.stages.1.layers.0.shortcut.convolution.weight"].shape == (512, 256, 1, 1)
    assert hf["encoder.stages.3.layers.2.layer.2.normalization.running_var"].shape == (2048,)
    assert hf_to_torchvision(hf) == {k: v for k, v in tv50.items() if not k.startswith("fc.")}


def test_resnet50_from_torchvision_file_matches_torchvision_forward(resnet50, tv50):
    loaded = resnet50.resnet.state_dict()
    for key, value in torchvision_to_hf(tv50).items():
        assert torch.equal(loaded[key], value), key
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, ref = resnet50(x), torchvision_forward(tv50, x)
    assert ours.shape == (2, 2048) and resnet50.dim == 2048
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_small_basic_block_resnet_maps_back_to_torchvision_forward():
    enc = VisualEncoder(VisualConfig(preset="small")).eval()
    tv = hf_to_torchvision(enc.resnet.state_dict())
    assert "layer2.0.downsample.0.weight" in tv and "layer1.0.conv3.weight" not in tv
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(enc(x), torchvision_forward(tv, x), rtol=1e-4, atol=1e-5)


def test_wrapped_prefixed_and_old_files_load_through_the_mapping(resnet50, tv50, tmp_path):
    target = resnet50.resnet
    expected = torchvision_to_hf(tv50)
    # a whole released-style checkpoint: ResNet under a prefix, other modules beside it, DDP wrapper
    released = {f"module.backbone_img.model.{k}": v for k, v in tv50.items() if not k.startswith("fc.")}
    released["module.backbone_img.global_embedder.weight"] = torch.zeros(768, 2048)
    released["module.backbone_text.model.embeddings.word_embeddings.weight"] = torch.zeros(4, 768)
    torch.save({"state_dict": released, "epoch": 3}, tmp_path / "epoch0003.pth.tar")
    state = load_resnet_weights(tmp_path / "epoch0003.pth.tar", target)
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in expected)
    # a pre-0.4.1 file without the BN counters (as the v1 ImageNet weights) and a .safetensors file
    old = {k: v for k, v in tv50.items() if not k.endswith("num_batches_tracked")}
    save_file(old, str(tmp_path / "old.safetensors"))
    state = load_resnet_weights(tmp_path / "old.safetensors", target)
    assert int(state["embedder.embedder.normalization.num_batches_tracked"]) == 0


def test_wrong_architecture_is_a_clear_error(resnet50, tmp_path):
    small = VisualEncoder(VisualConfig(preset="small"))
    torch.save(hf_to_torchvision(small.resnet.state_dict()), tmp_path / "small.pth")
    with pytest.raises(HecvlError, match="do not match the configured model") as err:
        load_resnet_weights(tmp_path / "small.pth", resnet50.resnet)
    assert "small.pth" in str(err.value) and "wrong shape" in str(err.value)


def test_hf_directory_with_classifier_loads(tmp_path):
    from transformers import ResNetForImageClassification

    from hecvl.models.visual_encoder import resnet_config

    cfg = VisualConfig(preset="small")
    clf = ResNetForImageClassification(resnet_config(cfg))
    clf.save_pretrained(tmp_path / "hf")
    enc = VisualEncoder(VisualConfig(preset="small", weights=str(tmp_path / "hf")))
    for key, value in enc.resnet.state_dict().items():
        assert torch.equal(value, clf.resnet.state_dict()[key]), key


def test_unreadable_and_foreign_files_are_refused(tmp_path):
    target = VisualEncoder(VisualConfig(preset="small")).resnet
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(HecvlError, match="not a readable PyTorch checkpoint") as err:
        load_resnet_weights(tmp_path / "junk.pth", target)
    assert "pickled Python objects" not in str(err.value)  # junk is junk, not a refused pickle
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(HecvlError, match="no ResNet weights"):
        load_resnet_weights(tmp_path / "other.pth", target)
    with pytest.raises(HecvlError, match=r"no model\.safetensors"):
        load_resnet_weights(tmp_path, target)


def test_key_rules_and_prefix_detection():
    assert torchvision_key_to_hf("fc.weight") is None
    hf = "encoder.stages.2.layers.5.layer.1.normalization.running_mean"
    assert torchvision_key_to_hf("layer3.5.bn2.running_mean") == hf
    assert hf_key_to_torchvision(hf) == "layer3.5.bn2.running_mean"
    for bad in ("layer1.0.conv1.bias", "layer1.0.downsample.2.weight", "classifier.1.weight"):
        with pytest.raises(HecvlError):
            torchvision_key_to_hf(bad)
    released = ["backbone_img.model.conv1.weight", "backbone_img.model.layer1.0.conv1.weight"]
    assert find_resnet_prefix(released) == ("torchvision", "backbone_img.model.")
    assert find_resnet_prefix(["resnet.embedder.embedder.convolution.weight"]) == ("hf", "resnet.")
    assert find_resnet_prefix(["layer1.0.conv1.weight"]) is None
