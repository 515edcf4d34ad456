"""Where in the image NERO's neuron relevance comes from: full-network LRP (zennit) down to the pixels.

Start. LRP starts from the class *probabilities* at the logits, and the head uses the epsilon rule with
NERO's guard and its bias kept, which is exactly NERO's LRP-0 (docs: NERO.md section 1): the relevance
arriving at the feature layer is NERO's neuron relevance R[:D] (tested), and the head's bias keeps R_b.
Starting from the predicted logit instead would explain the class decision, not the relevance vector the
OOD score is built on.

Rules (why not a stock zennit composite). With BatchNorm merged into the convolutions every conv has a bias,
and zennit's EpsilonPlus / EpsilonGammaBox let those biases absorb relevance: on EfficientNet-Lite0 measured
~98% of it never reaches the pixels, so the map cannot be checked against anything. Here every conv after
the first uses the bias-free z+ rule, which conserves relevance exactly except at a neuron with no positive
contribution at all (in EfficientNet's depthwise convs: channels whose merged kernel is all negative, the
neuron is "on" only through its bias). z+ would drop those, ~95% of the total; such a neuron instead passes
its relevance to its receptive field by the w^2 rule (input-independent, always defined). The first conv
uses the z^B (ZBox) rule for the pixel value range, bias-free, so the map has pixel resolution. Residual
sums and average pooling use zennit's Norm rule; activations and the merged (now identity) BatchNorms pass
relevance through. Result: sum of pixel relevance = sum of NERO neuron relevance (= 1 - R_b), up to the 1e-6
stabilisers and float32 rounding; `Heatmap.conservation_error` reports it for every map.

Architectures: torchvision ResNets (zennit's block canonizers) and timm EfficientNet-Lite (this module's
block canonizer; timm's BatchNormAct2d is a BatchNorm2d with the activation inside, merged here as a unit).
Models with parameters in other layer types (DeiT's attention, LayerNorm, embeddings) are refused: zennit
has no conserving rules for them.

Thread safety: while a map is computed, canonizers rewrite the model's weights and hooks sit on its layers
(both undone on exit). Never share the classifier with a thread that runs it concurrently; give the
explainer its own copy (`copy.deepcopy`), as `pipeline.explain_worker` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from zennit.canonizers import AttributeCanonizer, Canonizer, MergeBatchNorm
from zennit.composites import SpecialFirstLayerMapComposite, layer_map_base
from zennit.core import BasicHook, ParamMod, Stabilizer
from zennit.layer import Sum
from zennit.rules import ClampMod, Epsilon, ZBox
from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer
from zennit.types import BatchNorm, Convolution

from pipeline.errors import UserError
from pipeline.models import FeatureClassifier
from pipeline.nero import LOGIT_EPS
from stages.preprocess import Preprocess, content_box

STABILIZER = 1e-6
BIAS = ["bias"]


class ZPlusOrWSquare(BasicHook):
    """Bias-free z+ rule; a neuron with no positive contribution at all falls back to the w^2 rule.

    Both branches divide by a sum of non-negative terms, so each neuron hands on exactly what it received.
    """

    def __init__(self, stabilizer: float = STABILIZER) -> None:
        stabilize = Stabilizer.ensure(stabilizer)

        def split(out_grad: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
            positive = outputs[0] + outputs[1]
            evidence = positive > 0
            via_z = torch.where(evidence, out_grad / torch.where(evidence, positive, 1.0), 0.0)
            via_w = torch.where(evidence, 0.0, out_grad / stabilize(outputs[2]))
            return [via_z, via_z, via_w]

        super().__init__(
            input_modifiers=[lambda x: x.clamp(min=0), lambda x: x.clamp(max=0), torch.ones_like],
            param_modifiers=[
                ClampMod(min=0.0, zero_params=BIAS),
                ClampMod(max=0.0, zero_params=BIAS),
                ParamMod(lambda param, _: param * param, zero_params=BIAS),
            ],
            output_modifiers=[lambda output: output] * 3,
            gradient_mapper=split,
            reducer=lambda inputs, grads: inputs[0] * grads[0] + inputs[1] * grads[1] + grads[2],
        )


def _layers(module: nn.Module) -> Iterator[nn.Module]:
    """Leaf modules in registration (= forward) order; a BatchNorm subclass with children is one leaf."""
    for child in module.children():
        if isinstance(child, BatchNorm) or not any(True for _ in child.children()):
            yield child
        else:
            yield from _layers(child)


class MergeBatchNorms(MergeBatchNorm):
    """Fold every BatchNorm that directly follows a conv into it, and make the BatchNorm an exact identity.

    zennit's SequentialMergeBatchNorm looks at leaves only, so it misses timm's BatchNormAct2d (it has the
    activation as a child); and it leaves `eps` in the identity BatchNorm, which rescales every layer a bit.
    """

    def apply(self, root_module: nn.Module) -> list[Canonizer]:
        instances = []
        previous = None
        for layer in _layers(root_module):
            if isinstance(previous, Convolution) and isinstance(layer, BatchNorm):
                instance = self.copy()
                instance.register((previous,), layer)
                instances.append(instance)
            previous = layer
        return instances

    def register(self, linears, batch_norm) -> None:
        self.eps = batch_norm.eps
        super().register(linears, batch_norm)
        batch_norm.eps = 0.0

    def remove(self) -> None:
        super().remove()
        self.batch_norm.eps = self.eps


def _timm_block_forward(self, x: torch.Tensor) -> torch.Tensor:
    """timm DepthwiseSeparableConv / InvertedResidual forward, the skip add as a Sum module (Norm rule)."""
    shortcut = x
    for name in self.canonizer_layers:
        x = getattr(self, name)(x)
    return self.canonizer_sum(torch.stack([shortcut, self.drop_path(x)], dim=-1))


class TimmResidualCanonizer(AttributeCanonizer):
    """Route the skip add of timm's MobileNet-style blocks through a Sum module, as zennit does for ResNet.

    Without it the add's gradient copies the relevance into both branches and doubles it.
    """

    LAYERS = {
        "DepthwiseSeparableConv": ("conv_dw", "bn1", "aa", "se", "conv_pw", "bn2"),
        "InvertedResidual": ("conv_pw", "bn1", "conv_dw", "bn2", "aa", "se", "conv_pwl", "bn3"),
    }

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    def copy(self) -> TimmResidualCanonizer:
        return TimmResidualCanonizer()

    @classmethod
    def _attribute_map(cls, name: str, module: nn.Module) -> dict | None:
        layers = cls.LAYERS.get(type(module).__name__)
        if layers is None or not module.has_skip:
            return None
        if getattr(module, "conv_s2d", None) is not None or not isinstance(module.se, nn.Identity):
            raise UserError(f"heatmaps: {name} ({type(module).__name__}) has space-to-depth or "
                            "squeeze-excitation layers, which have no conserving LRP rule here "
                            "(supported: EfficientNet-Lite)")
        return {"forward": _timm_block_forward.__get__(module), "canonizer_sum": Sum(),
                "canonizer_layers": layers}


def canonizers_for(model: nn.Module) -> list[Canonizer]:
    """BatchNorm merging plus the residual canonizer of the model's family; UserError if unsupported."""
    supported = (Convolution, nn.Linear, BatchNorm)
    unsupported = sorted({type(m).__name__ for m in model.modules()
                          if any(True for _ in m.parameters(recurse=False)) and not isinstance(m, supported)})
    if unsupported:
        raise UserError(f"input-space heatmaps support CNNs (resnet18, efficientnet_lite0); this model has "
                        f"layers without a conserving LRP rule: {', '.join(unsupported)}")
    canonizers: list[Canonizer] = [MergeBatchNorms()]
    if any(isinstance(m, BasicBlock | Bottleneck) for m in model.modules()):
        canonizers += [ResNetBottleneckCanonizer(), ResNetBasicBlockCanonizer()]
    if any(type(m).__name__ in TimmResidualCanonizer.LAYERS for m in model.modules()):
        canonizers.append(TimmResidualCanonizer())
    return canonizers


def nero_composite(model: nn.Module, preprocess: Preprocess) -> SpecialFirstLayerMapComposite:
    """The rules of the module docstring, with the pixel box taken from the model's normalisation."""
    low = -preprocess.mean / preprocess.std                 # normalised value of pixel 0
    high = (255.0 - preprocess.mean) / preprocess.std       # ... and of pixel 255
    layer_map = layer_map_base(STABILIZER) + [
        (Convolution, ZPlusOrWSquare()),
        (nn.Linear, Epsilon(epsilon=LOGIT_EPS)),
    ]
    first_map = [(Convolution, ZBox(low, high, stabilizer=STABILIZER, zero_params=BIAS))]
    return SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=first_map,
                                         canonizers=canonizers_for(model))


@dataclass
class Heatmap:
    """Pixel relevance of one frame, at the model's input resolution, and where it sits in the frame."""

    relevance: np.ndarray     # size x size float32, summed over colour channels; + supports, - contradicts
    box: tuple[int, int, int, int]  # (top, bottom, left, right) of the frame region the model saw
    total: float              # sum of pixel relevance
    feature_total: float      # sum of NERO's neuron relevance at the feature layer (= 1 - R_b)
    feature_l1: float         # sum of |neuron relevance|: the scale to judge a difference of totals by
    probs: np.ndarray         # class probabilities of this forward pass

    @property
    def conservation_error(self) -> float:
        """|pixel total - feature total| / feature L1 (the total itself can be near 0 when R_b is near 1)."""
        return abs(self.total - self.feature_total) / max(self.feature_l1, 1e-12)


class HeatmapExplainer:
    """Computes pixel heatmaps for uint8 RGB frames with a classifier it uses exclusively (see module doc)."""

    def __init__(self, classifier: FeatureClassifier, preprocess: Preprocess) -> None:
        self.classifier = classifier
        self.preprocess = preprocess
        self.composite = nero_composite(classifier, preprocess)

    @property
    def device(self) -> torch.device:
        return next(self.classifier.parameters()).device

    def __call__(self, frames: Sequence[np.ndarray]) -> list[Heatmap]:
        tensors = [torch.from_numpy(np.ascontiguousarray(frame)).to(self.device) for frame in frames]
        inputs = self.preprocess(tensors).requires_grad_(True)
        captured: dict[str, torch.Tensor] = {}

        def keep_feature_relevance(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            args[0].register_hook(lambda grad: captured.__setitem__("features", grad))

        # Registered before the composite's hooks, so it sees the head's real input, whose gradient under
        # the LRP hooks is the relevance arriving at the feature layer.
        handle = self.classifier.head.register_forward_pre_hook(keep_feature_relevance)
        try:
            with torch.enable_grad(), self.composite.context(self.classifier) as model:
                _, logits = model(inputs)
                probs = torch.softmax(logits.detach(), dim=1)
                (pixels,) = torch.autograd.grad(logits, inputs, grad_outputs=probs)
        finally:
            handle.remove()
        maps = pixels.sum(dim=1).cpu().numpy()
        features = captured["features"].double()
        totals, norms = features.sum(dim=1).tolist(), features.abs().sum(dim=1).tolist()
        boxes = [self._box(frame) for frame in tensors]
        rows = zip(maps, boxes, totals, norms, probs.cpu().numpy(), strict=True)
        return [Heatmap(m, box, float(m.sum(dtype=np.float64)), total, norm, p)
                for m, box, total, norm, p in rows]

    def _box(self, frame: torch.Tensor) -> tuple[int, int, int, int]:
        if self.preprocess.crop_content:
            return content_box(frame)
        return 0, int(frame.shape[0]), 0, int(frame.shape[1])


# Overlay colours (RGB) at weak and full strength: tissue is red, so positive relevance runs red -> yellow
# over a grey copy of the frame, negative blue -> cyan.
POSITIVE = (np.array([200, 0, 0], np.float32), np.array([255, 235, 0], np.float32))
NEGATIVE = (np.array([0, 40, 200], np.float32), np.array([0, 220, 255], np.float32))


def tint(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB colour, opacity) for scaled relevance in [-1, 1] (shape ... x 1): the overlay's colour code."""
    strength = np.abs(value)
    low = np.where(value >= 0, POSITIVE[0], NEGATIVE[0])
    high = np.where(value >= 0, POSITIVE[1], NEGATIVE[1])
    return low + (high - low) * strength, 0.9 * strength


def scaled_relevance(heatmap: Heatmap, shape: tuple[int, ...]) -> np.ndarray:
    """The heatmap in frame coordinates (H x W), in [-1, 1], 0 outside the region the model saw.

    Scaled by the 99.5th percentile of |relevance| so that one hot pixel cannot wash out the rest; a light
    blur (about 1% of the width) turns LRP's pixel speckle into readable regions.
    """
    top, bottom, left, right = heatmap.box
    region = cv2.resize(heatmap.relevance, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
    region = cv2.GaussianBlur(region, (0, 0), max(1.0, 0.01 * region.shape[1]))
    scale = float(np.percentile(np.abs(region), 99.5)) or 1.0
    value = np.zeros(shape[:2], np.float32)
    value[top:bottom, left:right] = np.clip(region / scale, -1.0, 1.0)
    return value


def overlay(frame: np.ndarray, heatmap: Heatmap, max_side: int | None = None) -> np.ndarray:
    """The frame in grey with the heatmap blended in (colours: POSITIVE, NEGATIVE), at most `max_side` px."""
    if max_side and max(frame.shape[:2]) > max_side:
        factor = max_side / max(frame.shape[:2])
        size = (round(frame.shape[1] * factor), round(frame.shape[0] * factor))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        top, bottom, left, right = heatmap.box
        box = (round(top * factor), round(bottom * factor), round(left * factor), round(right * factor))
        heatmap = dataclasses.replace(heatmap, box=box)
    colour, alpha = tint(scaled_relevance(heatmap, frame.shape)[..., None])
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None] * 0.75 + 30
    return (grey * (1 - alpha) + colour * alpha).round().astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()
