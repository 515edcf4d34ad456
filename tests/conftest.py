"""Shared fixtures: the model bundle the streaming tests run, the demo clip and short clips cut from it.

The bundle is the bundled default (configs/default.yaml, always in the repository). Everything is
session-scoped: the model loads once for the whole suite.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from pipeline.config import DEFAULT_CONFIG, Config, load_config
from pipeline.model.bundle import Bundle, load_bundle

REPO = Path(__file__).resolve().parents[1]
DEMO_CLIP = REPO / "scripts" / "demo" / "clip.mp4"


@pytest.fixture(scope="session")
def monitor_config() -> Config:
    """The config the streaming tests run: the bundled default, on the CPU."""
    config = load_config(DEFAULT_CONFIG)
    config.device = "cpu"
    return config


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


def clip_segments(path: Path, ranges: list[tuple[int, int]]) -> list[np.ndarray]:
    """The frames of `path` whose index lies in one of the [start, end) ranges, in order, full size."""
    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= ranges[-1][1]:
                break
            if any(start <= index < end for start, end in ranges):
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


@pytest.fixture(scope="session")
def alert_clip(tmp_path_factory, demo_clip) -> Path:
    """8 s of the demo clip at 25 fps, with truth: Kvasir-SEG (frames 0-99), chest X-ray (100-174: the bundled
    default alerts on it within 2 frames), Kvasir-SEG again (175-199: the alert goes off)."""
    frames = clip_segments(demo_clip, [(1350, 1525), (1575, 1600)])
    return write_clip(tmp_path_factory.mktemp("clips") / "procedure.mp4", frames)


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory, demo_frames) -> Path:
    """A 60-frame, 25 fps H.264 MP4 of real frames."""
    return write_clip(tmp_path_factory.mktemp("clips") / "short.mp4", demo_frames)
