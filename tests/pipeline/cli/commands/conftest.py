"""Shared fixtures for command tests: a small real benchmark and a model to fit on it."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from pipeline.model.classifier import build_model, save_weights

REPO = Path(__file__).resolve().parents[4]
SHARED = REPO.parent / "shared" / "data"
needs_shared_data = pytest.mark.skipif(not (SHARED / "kvasir-seg").is_dir(),
                                       reason=f"shared data not found at {SHARED}")


@pytest.fixture(scope="session")
def small_benchmark(tmp_path_factory) -> Path:
    """scripts/prepare_data.py on a few frames: ID/{train,val}/{mucosa,polyp} and OOD/<set>/."""
    if not (SHARED / "kvasir-seg").is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    spec = importlib.util.spec_from_file_location("prepare_data", REPO / "scripts" / "prepare_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("prepare_data", module)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("benchmark")
    module.main(["--shared", str(SHARED), "--out", str(out), "--limit", "6", "--seed", "0"])
    return out


@pytest.fixture(scope="session")
def resnet_config(tmp_path_factory) -> Path:
    """A config for a small random-weight ResNet-18 (2 classes) whose artifact does not exist yet."""
    folder = tmp_path_factory.mktemp("resnet")
    torch.manual_seed(0)
    save_weights(build_model("resnet18", 2), folder / "weights.safetensors")
    config = folder / "config.yaml"
    config.write_text(f"model:\n  arch: resnet18\n  weights: {folder / 'weights.safetensors'}\n  num_classes: 2\n"
                      f"artifact: {folder / 'artifact'}\ndevice: cpu\n")
    return config
