"""Shared fixtures for command tests: a small real benchmark and a model to fit on it."""

from pathlib import Path

import pytest
import torch

from pipeline.model.classifier import build_model, save_weights

FIXTURES = Path(__file__).resolve().parents[3] / "data"


@pytest.fixture(scope="session")
def small_benchmark() -> Path:
    """tests/data: ID/{train,val}/{mucosa,polyp} and OOD/<set>/, as scripts/prepare_data.py lays them out
    (cut by scripts/make_test_fixtures.py)."""
    return FIXTURES


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
