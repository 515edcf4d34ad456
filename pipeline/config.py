"""YAML configuration: typed sections, validated on load, with the offending key named in every error.

A config names the model and the fitted artifact (`model`, `artifact`, `detector`, `preprocess`: what
`load_bundle` reads) and tunes the streaming monitor (`stream`, `alert`, `publish`, `explain`: what the
runner reads; the model bundle never holds them). A relative path in a config is relative to the folder of
that config file, so a config and its artifact can be moved or installed together; a `Config()` built in
code resolves against the bundled default's folder, where its defaults point.

The bundled default (`configs/default.yaml` and `centroids/default/`) is found in the source checkout, or,
in an installed wheel, under `pipeline/bundled/` where the wheel packages those two folders
(pyproject.toml), through `importlib.resources`.

This module imports no torch: the CLI loads and checks a config before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import UserError

# Scores the live monitor can alert on: NERO and pipeline.ood.detectors.LIVE (named here, torch-free, to
# check configs before anything heavy loads; tests/pipeline/test_config.py keeps the two lists equal).
MODEL_BACKENDS = ("auto", "torch", "openvino")
MODEL_PRECISIONS = ("float32", "bfloat16", "int8")    # pipeline/model/backend.py, quantize.py
LIVE_DETECTORS = ("nero", "relevance-knn", "relevance-mahalanobis", "relevance-ensemble", "relevance-patch")
SMOOTHING_KINDS = ("none", "mean", "median")  # pipeline/ood/alert.py
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def bundled_path(*parts: str) -> Path:
    """A file shipped with nero-monitor: the checkout's configs/ and centroids/, or the wheel's copies."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "configs" / "default.yaml").is_file():
        return checkout.joinpath(*parts)
    return Path(str(importlib.resources.files("pipeline.bundled"))).joinpath(*parts)


DEFAULT_CONFIG = bundled_path("configs", "default.yaml")


@dataclass
class ModelConfig:
    arch: str = "efficientnet_lite0"
    weights: str = "../centroids/default/model.safetensors"
    num_classes: int = 2
    # Where the forward pass runs (pipeline/model/backend.py): torch (the reference), openvino (CPU only), or
    # auto: openvino on the CPU where it is installed (4.4x torch's forward on the 2-core CPU, the same
    # alerts), torch elsewhere.
    backend: str = "auto"
    # The forward's arithmetic: float32 (the reference the artifact is fitted with), or bfloat16 (OpenVINO on a
    # CPU with bf16 instructions: 1.76-2.00x its float32 forward on the 2-core AMD EPYC; torch under autocast on
    # a GPU). Scores move by about 0.004, and a float32 artifact's false-alarm rate holds only roughly (one false
    # alarm on its 11-minute calibration video, none in float32, none after a refit with this setting:
    # docs/PERFORMANCE.md), so it is a choice, not a default. Or int8 (OpenVINO on the CPU): quantized by `nero
    # fit`, which needs the int8 extra (NNCF), into the artifact it fits; 2.3x the float32 forward on the 2-core
    # CPU, the live detector's validation AUROC kept (pipeline/model/quantize.py).
    precision: str = "float32"
    # On a GPU (ignored with a warning elsewhere): replay the forward from CUDA graphs captured per batch size
    # (one launch instead of hundreds; checked against the plain forward when captured, which it replaces if
    # they differ)
    cuda_graphs: bool = False


@dataclass
class PreprocessConfig:
    size: int = 224
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    crop_content: bool = False


@dataclass
class StreamConfig:
    max_batch: int = 16
    max_wait_ms: float = 10.0
    queue_size: int = 64            # replay: decoded frames held per stream before the decoder waits
    hwaccel: bool = False           # NVDEC decoding; for a GPU model its frames stay in GPU memory (media/yuv.py)
    live_queue_size: int = 16       # live: frames held per stream before the oldest is dropped
    queue_mb: float = 256.0         # either way, at most this many MB of decoded frames per stream (one 4K
                                    # RGB frame is 24.9 MB): the queue is full at whichever limit comes first
    result_queue_batches: int = 4   # scored batches waiting for the publish thread
    read_timeout_s: float = 5.0     # network sources: a stream silent this long counts as broken
    reconnect_initial_s: float = 0.5  # live: first wait before reconnecting, doubled per failure...
    reconnect_max_s: float = 10.0     # ...up to this
    report_every_s: float = 10.0    # live: seconds between metrics lines on stderr (0: none)
    stop_grace_s: float = 2.0       # after a stop, how long a blocked subscriber may hold the replay back
    # live and --realtime: warn (stderr and a `realtime` event) when the frame rate falls under the sources'
    # or the end-to-end p99 over the last `realtime_check_s` exceeds this many milliseconds
    latency_warn_ms: float = 500.0
    realtime_check_s: float = 5.0


@dataclass
class AlertConfig:
    # The operating point: the alert threshold of the on_count-of-window rule below, calibrated by
    # `nero fit --calibration-video` for this many false alarms per hour of in-distribution video
    # (pipeline/ood/operating_point.py). null, or an artifact without that calibration: the same rule on
    # the per-frame threshold instead (with a warning when the artifact could have been calibrated).
    false_alarms_per_hour: float | None = 1.0
    on_count: int = 3
    window: int = 5
    off_after: int = 10
    smoothing: str = "none"        # none | mean | median of the last smoothing_window scores
    smoothing_window: int = 13


@dataclass
class PublishConfig:
    endpoint: str = "tcp://127.0.0.1:5556"
    high_water_mark: int = 1000
    heartbeat_s: float = 1.0
    # The kernel's send buffer per subscriber (SO_SNDBUF; null: the system's, which on loopback grows to MBs):
    # with high_water_mark, how much a lagging live subscriber is handed late before its messages are dropped.
    send_buffer_bytes: int | None = None
    # Who may subscribe (pipeline/security.py, docs/SECURITY.md): the monitor's secret key file and the
    # allow-list folder of subscribers' public keys, both from `nero keys`; null: no CURVE.
    curve_key: str | None = None
    curve_clients: str | None = None
    allow_remote: bool = False      # bind an address other machines can reach (refused otherwise)
    # A small JPEG of what the model sees, on preview.<stream>, this many times a second per stream (0: off;
    # for `nero display`). Made on a thread of its own from the latest frame: it never holds up an alert.
    preview_fps: float = 0.0
    preview_width: int = 320        # pixels; the height follows the frame's aspect ratio


@dataclass
class ExplainConfig:
    """Heatmaps of alerting frames (`nero live --explain`), made in a worker process off the hot path."""

    max_pending: int = 2       # alerting frames waiting for a heatmap; more are dropped (counted), not waited for
    close_s: float = 10.0      # at the end of a run, how long the queued heatmaps may hold the shutdown
    max_side: int = 640        # longest side of a published heatmap PNG, in pixels


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    artifact: str = "../centroids/default"
    device: str = "auto"
    detector: str = "relevance-patch"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    alert: AlertConfig = field(default_factory=AlertConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    base_dir: Path = field(default=DEFAULT_CONFIG.parent, repr=False)   # relative paths start here

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, made absolute against the config file's folder."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def as_dict(self) -> dict[str, Any]:
        """Every setting, as a YAML file would hold it."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key != "base_dir"}

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
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise UserError(f"config key '{key}' must be {expected.__name__}, got {value!r}")
    return value


def _from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        section = prefix.rstrip(".") or "top level"
        raise UserError(f"config section '{section}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "base_dir"}
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


# Lower bounds of the numeric settings: (key, minimum, inclusive).
_BOUNDS = (
    ("model.num_classes", 2, True), ("preprocess.size", 1, True),
    ("stream.max_batch", 1, True), ("stream.max_wait_ms", 0, True), ("stream.queue_size", 1, True),
    ("stream.live_queue_size", 1, True), ("stream.queue_mb", 0, False), ("stream.result_queue_batches", 1, True),
    ("stream.read_timeout_s", 0, False), ("stream.reconnect_initial_s", 0, False),
    ("stream.reconnect_max_s", 0, False), ("stream.report_every_s", 0, True), ("stream.stop_grace_s", 0, True),
    ("stream.latency_warn_ms", 0, False), ("stream.realtime_check_s", 0, False),
    ("alert.on_count", 1, True), ("alert.window", 1, True), ("alert.off_after", 1, True),
    ("alert.smoothing_window", 1, True), ("publish.high_water_mark", 1, True),
    ("publish.send_buffer_bytes", 1024, True), ("publish.heartbeat_s", 0, False),
    ("publish.preview_fps", 0, True), ("publish.preview_width", 16, True),
    ("explain.max_pending", 1, True), ("explain.close_s", 0, True), ("explain.max_side", 16, True),
)


def endpoint_problem(endpoint: str) -> str | None:
    """What is wrong with a ZeroMQ endpoint to bind, or None: tcp://HOST:PORT (PORT 1-65535, or * for a free
    one), ipc://PATH or inproc://NAME. ZeroMQ itself takes a port out of range silently (it bound 34463 for
    99999)."""
    transport, separator, address = endpoint.partition("://")
    if not separator or transport not in ("tcp", "ipc", "inproc") or not address:
        return "expected tcp://HOST:PORT (or ipc://PATH, inproc://NAME)"
    if transport != "tcp":
        return None
    host, colon, port = address.rpartition(":")
    if not colon or not host:
        return "expected tcp://HOST:PORT"
    if port != "*" and not (port.isdigit() and 1 <= int(port) <= 65535):
        return f"port {port!r} is not a number from 1 to 65535 (or * for a free one)"
    return None


def validate(config: Config) -> Config:
    """Check the values (types are checked on load), naming the key of the first wrong one."""
    for key, minimum, inclusive in _BOUNDS:
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value is None:           # an optional setting left to its default
            continue
        if value < minimum or (not inclusive and value == minimum):
            bound = f">= {minimum}" if inclusive else f"> {minimum}"
            raise UserError(f"config key '{key}' must be {bound}, got {value!r}")
    rate = config.alert.false_alarms_per_hour
    if rate is not None and not rate > 0:
        raise UserError(f"config key 'alert.false_alarms_per_hour' must be > 0 (or null for the hysteresis rule), "
                        f"got {rate!r}")
    problem = endpoint_problem(config.publish.endpoint)
    if problem:
        raise UserError(f"config key 'publish.endpoint' ({config.publish.endpoint!r}): {problem}")
    if config.alert.on_count > config.alert.window:
        raise UserError(f"config key 'alert.on_count' ({config.alert.on_count}) must not exceed 'alert.window' "
                        f"({config.alert.window}): the alert counts frames over the threshold within that window")
    if config.alert.smoothing not in SMOOTHING_KINDS:
        raise UserError(f"config key 'alert.smoothing' must be one of {', '.join(SMOOTHING_KINDS)}, "
                        f"got {config.alert.smoothing!r}")
    if config.model.backend not in MODEL_BACKENDS:
        raise UserError(f"config key 'model.backend' must be one of {', '.join(MODEL_BACKENDS)}, "
                        f"got {config.model.backend!r}")
    if config.model.precision not in MODEL_PRECISIONS:
        raise UserError(f"config key 'model.precision' must be one of {', '.join(MODEL_PRECISIONS)}, "
                        f"got {config.model.precision!r}")
    if config.model.precision == "int8" and config.model.backend == "torch":
        raise UserError("config key 'model.precision' is int8, which runs with OpenVINO only, but model.backend is "
                        "torch: set model.backend to openvino or auto")
    if config.detector not in LIVE_DETECTORS:
        raise UserError(f"config key 'detector' must be one of {', '.join(LIVE_DETECTORS)}, "
                        f"got {config.detector!r}")
    if config.device != "auto" and not config.device.startswith(("cpu", "cuda")):
        raise UserError(f"config key 'device' must be auto, cpu or cuda[:N], got {config.device!r}")
    for key in ("mean", "std"):
        if len(getattr(config.preprocess, key)) != 3:
            raise UserError(f"config key 'preprocess.{key}' must hold 3 numbers (R, G, B)")
    return config


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a YAML config; `None` means the bundled default."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a directory (pass the YAML file, e.g. {path}/config.yaml)") \
            from None
    except yaml.YAMLError as error:
        raise UserError(f"config file {path} is not valid YAML: {error}") from None
    config = _from_dict(Config, data)
    config.base_dir = path.resolve().parent
    return validate(config)
