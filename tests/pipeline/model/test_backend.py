"""OpenVINO against the torch reference (`model.backend`): the same features, predictions and alerts."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.model.backend import OpenVinoForward, cache_folder
from pipeline.model.bundle import configured_weights
from pipeline.model.classifier import file_sha256

pytest.importorskip("openvino")
REPO = Path(__file__).resolve().parents[3]
DECISIONS = ("seq", "frame", "pred", "ood", "reason", "alert")


@pytest.fixture(scope="module")
def weights_sha256() -> str:
    return file_sha256(configured_weights(load_config(DEFAULT_CONFIG)))


@pytest.fixture(scope="module")
def openvino_bundle(bundle, weights_sha256, tmp_path_factory):
    os.environ["NERO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return dataclasses.replace(bundle, forward=OpenVinoForward(bundle.classifier, bundle.arch, weights_sha256, 224))


def test_features_and_predictions_match_torch_on_real_frames(bundle, openvino_bundle, demo_frames):
    frames = torch.from_numpy(np.stack(demo_frames))
    inputs = bundle.preprocess(frames)
    with torch.no_grad():
        features, logits = bundle.classifier(inputs)
    ours, our_logits = openvino_bundle.forward(inputs)
    relative = ((ours - features).abs().max() / features.abs().max()).item()
    assert relative < 1e-4
    assert torch.equal(our_logits.argmax(1), logits.argmax(1))
    reference, faster = bundle.infer(frames), openvino_bundle.infer(frames)
    assert torch.allclose(faster.terms.score, reference.terms.score, rtol=1e-4, atol=1e-6)


def test_the_converted_model_is_cached_and_reused(bundle, openvino_bundle, weights_sha256, caplog):
    cached = sorted((cache_folder() / "openvino").glob("*.xml"))
    assert len(cached) == 1 and cached[0].with_suffix(".bin").is_file()
    assert not list(cached[0].parent.glob("*partial*"))             # written whole, then renamed
    before = cached[0].stat().st_mtime_ns
    with caplog.at_level("INFO", logger="pipeline.model.backend"):
        OpenVinoForward(bundle.classifier, bundle.arch, weights_sha256, 224)
    assert "converting" not in caplog.text and cached[0].stat().st_mtime_ns == before


def test_the_demo_clips_alerts_are_identical_across_backends(openvino_bundle, demo_clip, monitor_config_file,
                                                             tmp_path):
    decisions = {}
    for backend in ("torch", "openvino"):
        config = yaml.safe_load(monitor_config_file.read_text())
        config["model"]["backend"] = backend
        (tmp_path / f"{backend}.yaml").write_text(yaml.safe_dump(config))
        audit = tmp_path / f"{backend}.jsonl"
        done = subprocess.run([sys.executable, "-m", "pipeline", "replay", str(demo_clip), "--config",
                               str(tmp_path / f"{backend}.yaml"), "--publish", "tcp://127.0.0.1:*", "--jsonl",
                               str(audit), "--no-progress"], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr
        frames = [m for m in map(json.loads, audit.read_text().splitlines()) if m["type"] == "frame"]
        decisions[backend] = [tuple(m[key] for key in DECISIONS) for m in frames]
        decisions[f"{backend} scores"] = [m["score"] for m in frames]
    assert len(decisions["torch"]) == 1875 and decisions["openvino"] == decisions["torch"]
    assert decisions["openvino scores"] == pytest.approx(decisions["torch scores"], rel=1e-4)
