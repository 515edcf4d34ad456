"""YAML configuration: typed sections, validated on load, with the offending key named in every error.

A config names the model and the fitted artifact, and tunes the streaming monitor. Paths inside a config are
relative to the repository root when not absolute, so `configs/default.yaml` works from any directory.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
DETECTORS = ("nero", "relevance-knn")   # what the live monitor can alert on (pipeline/live_detector.py)
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"


@dataclass
class ModelConfig:
    arch: str = "efficientnet_lite0"
    weights: str = "centroids/default/model.safetensors"
    num_classes: int = 2


@dataclass
class PreprocessConfig:
    size: int = 224
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    crop_content: bool = False


@dataclass
class StreamConfig:
    max_batch: int = 16
    max_wait_ms: float = 10.0
    queue_size: int = 64            # replay: decoded frames held per stream before the decoder waits
    hwaccel: bool = False
    live_queue_size: int = 16       # live: frames held per stream before the oldest is dropped
    read_timeout_s: float = 5.0     # network sources: a stream silent this long counts as broken
    reconnect_initial_s: float = 0.5  # live: first wait before reconnecting, doubled per failure...
    reconnect_max_s: float = 10.0     # ...up to this
    report_every_s: float = 10.0    # live: seconds between metrics lines on stderr (0: none)


@dataclass
class AlertConfig:
    on_count: int = 3
    window: int = 5
    off_after: int = 10
    smoothing: str = "none"        # none | mean | median of the last smoothing_window scores (stages/alert.py)
    smoothing_window: int = 13


@dataclass
class PublishConfig:
    endpoint: str = "tcp://127.0.0.1:5556"
    high_water_mark: int = 1000
    heartbeat_s: float = 1.0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    artifact: str = "centroids/default"
    device: str = "auto"
    detector: str = "nero"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    alert: AlertConfig = field(default_factory=AlertConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    source_path: Path | None = None

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, made absolute against the repository root."""
        path = Path(path)
        return path if path.is_absolute() else REPO_ROOT / path

    def torch_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"config key 'device' is {self.device!r} but no CUDA GPU is available")
        return self.device


def _check_type(value: Any, expected: Any, key: str) -> Any:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        options = [t for t in typing.get_args(expected) if t is not type(None)]
        return _check_type(value, options[0], key) if value is not None else None
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise UserError(f"config key '{key}' must be a list, got {value!r}")
        return [_check_type(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is Path:
        expected = str
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise UserError(f"config key '{key}' must be {expected.__name__}, got {value!r}")
    return value


def _from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        section = prefix.rstrip(".") or "top level"
        raise UserError(f"config section '{section}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            raise UserError(f"unknown config key '{dotted}' (known: {', '.join(sorted(known))})")
        if dataclasses.is_dataclass(hints[key]):
            values[key] = _from_dict(hints[key], value, f"{dotted}.")
        else:
            values[key] = _check_type(value, hints[key], dotted)
    return cls(**values)


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a YAML config; `None` means the bundled default."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except yaml.YAMLError as error:
        raise UserError(f"config file {path} is not valid YAML: {error}") from None
    config = _from_dict(Config, data)
    config.source_path = path
    if config.detector not in DETECTORS:
        raise UserError(f"config key 'detector' must be one of {', '.join(DETECTORS)}, got {config.detector!r}")
    if config.device != "auto" and not config.device.startswith(("cpu", "cuda")):
        raise UserError(f"config key 'device' must be auto, cpu or cuda[:N], got {config.device!r}")
    return config
