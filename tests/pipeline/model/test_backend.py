"""The forward's backends against the torch reference: OpenVINO (`model.backend`) gives the same features,
predictions and alerts; bfloat16 (`model.precision`) close scores and the same alerts; CUDA graphs
(`model.cuda_graphs`, GPU only) the same outputs."""

from __future__ import annotations

import copy
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
from pipeline.model.backend import (
    AutocastForward,
    CudaGraphForward,
    OpenVinoForward,
    cache_folder,
    make_forward,
    openvino_model,
)
from pipeline.model.bundle import configured_weights
from pipeline.model.classifier import file_sha256
from pipeline.ood.truth import runs

REPO = Path(__file__).resolve().parents[3]
DECISIONS = ("seq", "frame", "pred", "ood", "reason", "alert")


@pytest.fixture(scope="module")
def weights_sha256() -> str:
    return file_sha256(configured_weights(load_config(DEFAULT_CONFIG)))


@pytest.fixture(scope="module")
def openvino_bundle(bundle, weights_sha256, tmp_path_factory):
    pytest.importorskip("openvino")
    os.environ["NERO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    model = openvino_model(bundle.classifier, bundle.arch, weights_sha256, 224)
    return dataclasses.replace(bundle, forward=OpenVinoForward(model))


def test_features_and_predictions_match_torch_on_real_frames(bundle, openvino_bundle, demo_frames):
    frames = torch.from_numpy(np.stack(demo_frames))
    inputs = bundle.preprocess(frames)
    with torch.no_grad():
        features, logits, patches = bundle.classifier(inputs)
    ours, our_logits, our_patches = openvino_bundle.forward(inputs)
    for got, want in ((ours, features), (our_patches, patches)):
        assert ((got - want).abs().max() / want.abs().max()).item() < 1e-4
    assert torch.equal(our_logits.argmax(1), logits.argmax(1))
    reference, faster = bundle.infer(frames), openvino_bundle.infer(frames)
    assert torch.allclose(faster.terms.score, reference.terms.score, rtol=1e-4, atol=1e-6)


def test_the_converted_model_is_cached_and_reused(bundle, openvino_bundle, weights_sha256, caplog):
    cached = sorted((cache_folder() / "openvino").glob("*.xml"))
    assert len(cached) == 1 and cached[0].with_suffix(".bin").is_file()
    assert not list(cached[0].parent.glob("*partial*"))             # written whole, then renamed
    before = cached[0].stat().st_mtime_ns
    with caplog.at_level("INFO", logger="pipeline.model.backend"):
        OpenVinoForward(openvino_model(bundle.classifier, bundle.arch, weights_sha256, 224))
    assert "converting" not in caplog.text and cached[0].stat().st_mtime_ns == before


def test_the_demo_clips_alerts_are_identical_across_backends_and_precisions(openvino_bundle, demo_clip,
                                                                            monitor_config_file, tmp_path):
    decisions, frames = {}, {}
    for name, model in (("torch", {"backend": "torch"}), ("openvino", {"backend": "openvino"}),
                        ("bfloat16", {"backend": "openvino", "precision": "bfloat16"})):
        config = yaml.safe_load(monitor_config_file.read_text())
        config["model"].update(model)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        audit = tmp_path / f"{name}.jsonl"
        done = subprocess.run([sys.executable, "-m", "pipeline", "replay", str(demo_clip), "--config",
                               str(tmp_path / f"{name}.yaml"), "--publish", "tcp://127.0.0.1:*", "--jsonl",
                               str(audit), "--no-progress"], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr
        frames[name] = [m for m in map(json.loads, audit.read_text().splitlines()) if m["type"] == "frame"]
        decisions[name] = [tuple(m[key] for key in DECISIONS) for m in frames[name]]
    assert len(decisions["torch"]) == 1875 and decisions["openvino"] == decisions["torch"]
    assert [m["score"] for m in frames["openvino"]] == pytest.approx([m["score"] for m in frames["torch"]], rel=1e-4)
    # bfloat16 moves scores a little (measured: 0.004 on average), not the alert episodes. Within the capsule
    # segment, frames 942-951 lie on the alert threshold: float32 lets the alert drop there, bfloat16 keeps it.
    alerts = {name: episodes(runs(np.array([m["alert"] for m in value]))) for name, value in frames.items()}
    assert alerts["bfloat16"] == alerts["torch"] != []
    agreement = np.mean([a["alert"] == b["alert"] for a, b in zip(frames["bfloat16"], frames["torch"], strict=True)])
    assert agreement >= 0.99


def episodes(intervals: list[tuple[int, int]], gap: int = 25) -> list[tuple[int, int]]:
    """Alert intervals with those less than `gap` frames (1 s of the demo clip) apart joined."""
    joined: list[tuple[int, int]] = []
    for start, end in intervals:
        if joined and start - joined[-1][1] < gap:
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def bfloat16_forwards(bundle, weights_sha256):
    yield AutocastForward(bundle.classifier, torch.device("cpu"), torch.bfloat16)
    pytest.importorskip("openvino")
    yield OpenVinoForward(openvino_model(bundle.classifier, bundle.arch, weights_sha256, 224), "bfloat16")


def test_bfloat16_keeps_predictions_and_scores_close_and_the_explanations_model_in_float32(
        bundle, weights_sha256, demo_frames, caplog):
    frames = torch.from_numpy(np.stack(demo_frames))
    reference = bundle.infer(frames)
    for forward in bfloat16_forwards(bundle, weights_sha256):
        if forward.description == "OpenVINO float32":        # a CPU without bf16 instructions says so
            assert "no bfloat16 instructions" in caplog.text
        lower = dataclasses.replace(bundle, forward=forward).infer(frames)
        agreement = (lower.probs.argmax(1) == reference.probs.argmax(1)).float().mean().item()
        difference = (lower.terms.score - reference.terms.score).abs()
        assert agreement >= 0.95, forward.description           # 98.3% of these 60 frames
        assert difference.mean() < 0.02 and difference.max() < 0.15, forward.description   # 0.004 / 0.07
    parameter = next(bundle.classifier.parameters())
    assert parameter.dtype == torch.float32 and parameter.is_contiguous()   # the relevance pass's model as it was


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graphs_give_the_plain_forwards_outputs_for_every_batch_size(bundle, demo_frames):
    classifier = copy.deepcopy(bundle.classifier).to("cuda")
    # As the monitor builds it: float32 without TF32 (on the lent H200, TF32 moved the graph's features by 3e-4).
    graphed = make_forward("torch", classifier, torch.device("cuda"), "", "", bundle.preprocess.size,
                           cuda_graphs=True)
    assert isinstance(graphed, CudaGraphForward) and not torch.backends.cudnn.allow_tf32
    inputs = bundle.preprocess(torch.from_numpy(np.stack(demo_frames)).cuda())
    for count in (1, 3, 8, 16, 3, 1):          # captures 1, 4, 8 and 16, then replays two of them
        for start in (0, 20):                    # new inputs through the same static buffer
            batch = inputs[start:start + count]
            with torch.inference_mode():
                want = classifier(batch)
            got = graphed(batch)
            for ours, plain in zip(got, want, strict=True):
                assert ours.shape == plain.shape
                assert torch.allclose(ours, plain, rtol=1e-4, atol=1e-5)
    assert sorted(graphed.graphs) == [1, 4, 8, 16] and not graphed.refused
