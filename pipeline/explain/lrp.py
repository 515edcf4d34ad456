"""The LRP rules, canonizers and composite that carry NERO's neuron relevance down to the pixels (zennit).

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
"""

from __future__ import annotations

from collections.abc import Iterator

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
from pipeline.model.preprocess import Preprocess
from pipeline.ood.nero import LOGIT_EPS

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
