"""Shared fixtures: the model bundle the streaming tests run, the demo clip and short clips cut from it.

The bundle is the bundled default (configs/default.yaml) when its weights and artifact are in the repository;
otherwise a small real one is built here: EfficientNet-Lite0 with random weights, NERO fitted on features of
real Kvasir-SEG frames. Everything is session-scoped: the model loads once for the whole suite.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml

from pipeline.config import DEFAULT_CONFIG, Config, load_config
from pipeline.media.images import list_images, read_rgb
from pipeline.model.artifact import save_artifact
from pipeline.model.bundle import Bundle, load_bundle, preprocess_settings
from pipeline.model.classifier import build_model, file_sha256, load_classifier, save_weights
from pipeline.model.preprocess import Preprocess
from pipeline.ood.nero import NeroScorer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DEMO_CLIP = REPO / "scripts" / "demo" / "clip.mp4"


def default_bundle_present() -> bool:
    config = load_config(DEFAULT_CONFIG)
    return config.resolve(config.model.weights).is_file() and (config.resolve(config.artifact)
                                                               / "manifest.json").is_file()


def _random_config(folder: Path) -> Config:
    """EfficientNet-Lite0 (random weights) with NERO fitted on 32 real Kvasir-SEG frames.

    The batch-norm statistics are measured on those frames first (with the default statistics a random
    network's activations grow layer by layer), and the head gets a bias: NERO's lambda divides by the mean
    bias relevance, which a zero-initialised bias makes zero.
    """
    if not (SHARED / "kvasir-seg").is_dir():
        pytest.skip(f"neither the bundled default model nor shared data ({SHARED}) is present")
    config = Config(artifact=str(folder / "artifact"), device="cpu")
    prepare = Preprocess(config.preprocess.size, config.preprocess.mean, config.preprocess.std)
    images = list_images(SHARED / "kvasir-seg" / "train" / "images")[:32]
    inputs = prepare([torch.from_numpy(read_rgb(p)) for p in images])
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", 2)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None   # a plain average over the calibration batch
    with torch.no_grad():
        model.train()(inputs)
        model.get_classifier().bias.normal_(0.0, 0.5)
    weights = folder / "model.safetensors"
    save_weights(model, weights)
    config.model.weights = str(weights)
    classifier = load_classifier(config.model.arch, weights, 2, "cpu")
    with torch.no_grad():
        features, _ = classifier(inputs)
    labels = np.arange(len(images)) % 2  # arbitrary classes: the weights are random anyway
    head = classifier.head
    scorer = NeroScorer.fit(features, labels, head.weight.detach(), head.bias.detach(), k=64, n_components=16)
    threshold = float(np.quantile(scorer.score(features), 0.95))
    save_artifact(folder / "artifact", scorer, class_names=["mucosa", "polyp"], threshold=threshold,
                  threshold_rule="95% of the fitting frames (test fixture, random weights)",
                  model={"arch": "efficientnet_lite0", "sha256": file_sha256(weights),
                         "weights": weights.name},
                  preprocess=preprocess_settings(config))
    return config


@pytest.fixture(scope="session")
def monitor_config(tmp_path_factory) -> Config:
    """The config the streaming tests run: the bundled default on the CPU, or a small real stand-in."""
    if default_bundle_present():
        config = load_config(DEFAULT_CONFIG)
        config.device = "cpu"
        return config
    return _random_config(tmp_path_factory.mktemp("random_bundle"))


@pytest.fixture(scope="session")
def monitor_config_file(monitor_config, tmp_path_factory) -> Path:
    """`monitor_config` as a YAML file, for commands run with --config."""
    config = monitor_config
    document = {
        "model": {"arch": config.model.arch, "weights": str(config.resolve(config.model.weights)),
                  "num_classes": config.model.num_classes},
        "artifact": str(config.resolve(config.artifact)),
        "device": "cpu",
        "preprocess": dataclasses.asdict(config.preprocess),
    }
    path = tmp_path_factory.mktemp("config") / "monitor.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="session")
def bundle(monitor_config) -> Bundle:
    return load_bundle(monitor_config)


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """Encode RGB frames as H.264 (container from the suffix: .mp4, .ts, .mkv)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def read_frames(path: Path, count: int, step: int = 1, size: int = 160) -> list[np.ndarray]:
    """Every `step`-th of the first count*step frames of a video, resized to size x size."""
    import cv2

    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= count * step:
                break
            if index % step == 0:
                frames.append(cv2.resize(frame.to_ndarray(format="rgb24"), (size, size)))
    return frames


@pytest.fixture(scope="session")
def demo_clip() -> Path:
    """The bundled demo clip (scripts/demo/clip.mp4): 1875 frames, Kvasir-SEG pans and three OOD segments."""
    if not DEMO_CLIP.is_file():
        pytest.skip(f"demo clip not found at {DEMO_CLIP}")
    return DEMO_CLIP


@pytest.fixture(scope="session")
def demo_frames(demo_clip) -> list[np.ndarray]:
    """60 real frames (every 30th of the demo clip, 160x160): Kvasir and the OOD segments."""
    return read_frames(demo_clip, 60, step=30)


@pytest.fixture(scope="session")
def make_clip():
    """`make_clip(path, frames, fps=25)`: encode RGB frames as H.264 (container from the suffix)."""
    return write_clip


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory, demo_frames) -> Path:
    """A 60-frame, 25 fps H.264 MP4 of real frames."""
    return write_clip(tmp_path_factory.mktemp("clips") / "short.mp4", demo_frames)
