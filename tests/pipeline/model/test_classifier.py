"""The classifier adapter: every architecture splits into features + one linear head without changing its output,
weights survive an fp16 round trip, and files that do not fit are refused with the keys named."""

import hashlib

import pytest
import torch
from torch import nn

from pipeline.errors import UserError
from pipeline.model.classifier import (
    ARCHITECTURES,
    FeatureClassifier,
    build_model,
    file_sha256,
    load_classifier,
    load_weights,
    save_weights,
)

FEATURES = {"resnet18": 512, "deit_small": 384, "efficientnet_lite0": 1280}
PATCH_CHANNELS = {"resnet18": 256, "deit_small": 384, "efficientnet_lite0": 80 + 112}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_features_and_logits_match_the_unwrapped_model(arch: str, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=3).eval()
    wrapped = FeatureClassifier(model).eval()
    with torch.no_grad():
        features, logits, patches = wrapped(images)
        direct = model(images)
        from_head = wrapped.head(features)
    assert features.shape == (2, FEATURES[arch]) and logits.shape == (2, 3)
    assert patches.shape == (2, 49, PATCH_CHANNELS[arch])        # a 7 x 7 grid of mid-level descriptors
    assert wrapped.head.weight.shape == (3, FEATURES[arch]) and wrapped.head.bias.shape == (3,)
    torch.testing.assert_close(logits, from_head)
    torch.testing.assert_close(logits, direct, rtol=1e-5, atol=1e-5)
    if arch == "resnet18":  # features are the global-average-pool output, hence non-negative
        assert bool((features >= 0).all())


def test_wrapping_leaves_the_callers_model_intact(images: torch.Tensor) -> None:
    model = build_model("resnet18", num_classes=2).eval()
    wrapped = FeatureClassifier(model)
    assert isinstance(model.fc, nn.Linear) and wrapped.head is model.fc
    assert wrapped.backbone.model.layer1 is model.layer1  # shared, not copied
    with torch.no_grad():
        assert model(images).shape == (2, 2)


def test_a_head_that_is_not_one_linear_layer_is_refused() -> None:
    model = build_model("resnet18", num_classes=2)
    model.fc = nn.Sequential(nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 2))
    with pytest.raises(UserError, match="not one nn.Linear"):
        FeatureClassifier(model)
    with pytest.raises(UserError, match="cannot find the classification head"):
        FeatureClassifier(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)))


def test_unknown_architecture_lists_the_choices() -> None:
    with pytest.raises(UserError, match="resnet18, deit_small, efficientnet_lite0"):
        build_model("resnet50", num_classes=2)


def test_fp16_safetensors_round_trip(tmp_path, images: torch.Tensor) -> None:
    torch.manual_seed(1)
    model = build_model("efficientnet_lite0", num_classes=2).eval()
    path = tmp_path / "model.safetensors"
    save_weights(model, path)
    assert 5e6 < path.stat().st_size < 8e6  # ~3.4 M parameters at 2 bytes
    loaded = load_classifier("efficientnet_lite0", path, num_classes=2)
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(images)[1], model(images), rtol=0.02, atol=0.02)
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_torch_checkpoints_load_too(tmp_path) -> None:
    model = build_model("resnet18", num_classes=2)
    path = tmp_path / "model.pt"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    fresh = build_model("resnet18", num_classes=2)
    load_weights(fresh, path)
    torch.testing.assert_close(fresh.fc.weight, model.fc.weight)


def test_weights_that_do_not_fit_are_refused_naming_keys(tmp_path) -> None:
    path = tmp_path / "resnet.safetensors"
    save_weights(build_model("resnet18", num_classes=2), path)
    with pytest.raises(UserError, match=r"shape mismatch.*fc\.weight \(2, 512\) vs \(5, 512\)"):
        load_weights(build_model("resnet18", num_classes=5), path)
    with pytest.raises(UserError, match=r"missing keys: .*unexpected keys: .*layer1"):
        load_weights(build_model("efficientnet_lite0", num_classes=2), path)
    with pytest.raises(UserError, match="weights file not found"):
        load_weights(build_model("resnet18", num_classes=2), tmp_path / "absent.safetensors")
