"""A damaged artifact, caused for real (files cut short, deleted, a NaN written into them, a manifest without
its model): one line that names the file and says to refit, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "tests" / "data" / "OOD" / "natural" / "horse.jpg"


@pytest.fixture
def artifact(tmp_path, monitor_config) -> tuple[Path, Path]:
    """A copy of the bundled artifact and a config that uses it."""
    folder = shutil.copytree(monitor_config.resolve(monitor_config.artifact), tmp_path / "artifact")
    config = tmp_path / "config.yaml"
    config.write_text(f"model:\n  arch: efficientnet_lite0\n  weights: {folder / 'model.safetensors'}\n"
                      f"  num_classes: 2\nartifact: {folder}\ndevice: cpu\n")
    return folder, config


def score_error(config: Path, capsys) -> str:
    assert main(["score", str(IMAGE), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("name", ["arrays.safetensors", "relevance_bank.safetensors"])
def test_a_truncated_or_missing_artifact_file_is_one_line(name, artifact, capsys):
    folder, config = artifact
    path = folder / name
    path.write_bytes(path.read_bytes()[:1000])
    assert f"artifact file {path} is damaged" in score_error(config, capsys)
    path.unlink()
    assert f"artifact file {path} is missing" in score_error(config, capsys)


def test_a_nan_in_the_artifact_is_refused(artifact, capsys):
    folder, config = artifact
    arrays = load_file(str(folder / "arrays.safetensors"))
    arrays["centroids"][0, 0] = float("nan")
    save_file(arrays, str(folder / "arrays.safetensors"))
    assert "holds NaN or infinity in 'centroids'" in score_error(config, capsys)


def test_a_manifest_without_its_model_is_refused(artifact, capsys):
    folder, config = artifact
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["model"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert "lacks model" in score_error(config, capsys)
