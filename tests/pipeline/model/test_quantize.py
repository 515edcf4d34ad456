"""`model.precision: int8`: `nero fit` quantizes the bundled model into the artifact, which the monitor then
runs, on real frames; and the artifacts it refuses, each in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.errors import UserError
from pipeline.media.images import list_images
from pipeline.model.backend import check_int8_device
from pipeline.model.bundle import load_bundle

FIXTURES = Path(__file__).resolve().parents[2] / "data"
SETS = ("ID/val", "OOD/laparoscopic", "OOD/capsule", "OOD/chest-xray", "OOD/natural")


def fit(config_file: Path, precision: str, out: Path) -> Path:
    config = yaml.safe_load(config_file.read_text())
    config["model"]["precision"] = precision
    config_path = out.with_suffix(".yaml")
    config_path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(config_path), "--train", str(FIXTURES / "ID" / "train"),
                 "--val", str(FIXTURES / "ID" / "val"), "--out", str(out), "--n-components", "16",
                 "--bank", str(FIXTURES / "ID" / "train" / "polyp")]) == 0
    return out


@pytest.fixture(scope="module")
def artifacts(monitor_config_file, tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    folder = tmp_path_factory.mktemp("int8")
    return {precision: fit(monitor_config_file, precision, folder / precision) for precision in ("float32", "int8")}


def scored(artifact: Path, tmp_path: Path) -> list[dict]:
    records = []
    for name in SETS:
        jsonl = tmp_path / f"{artifact.name}-{name.replace('/', '-')}.jsonl"
        assert main(["score", str(FIXTURES / name), "--config", str(artifact / "config.yaml"),
                     "--jsonl", str(jsonl)]) == 0
        records += [json.loads(line) for line in jsonl.read_text().splitlines()]
    return records


def test_fit_quantizes_the_model_into_the_artifact_and_the_monitor_runs_it(artifacts):
    manifest = json.loads((artifacts["int8"] / "manifest.json").read_text())
    entry = manifest["model"]["int8"]
    assert manifest["model"]["precision"] == "int8"
    assert sorted(entry["sha256"]) == ["model.int8.bin", "model.int8.xml"]
    assert all(len(digest) == 64 for digest in entry["sha256"].values())
    assert (artifacts["int8"] / entry["file"]).is_file() and (artifacts["int8"] / "model.int8.bin").is_file()
    assert "int8" not in json.loads((artifacts["float32"] / "manifest.json").read_text())["model"]
    bundle = load_bundle(load_config(artifacts["int8"] / "config.yaml"))
    assert bundle.forward.description == "OpenVINO int8"


def test_int8_decides_the_test_images_as_float32_does(artifacts, tmp_path):
    decisions = {precision: scored(artifact, tmp_path) for precision, artifact in artifacts.items()}
    assert len(decisions["int8"]) == len(decisions["float32"]) == sum(len(list_images(FIXTURES / name))
                                                                         for name in SETS)
    pairs = list(zip(decisions["float32"], decisions["int8"], strict=True))
    inside = [(theirs, ours) for theirs, ours in pairs if "/ID/" in ours["path"]]
    # the class of an in-distribution window (an X-ray's is meaningless); here 33 of 34 agreed
    assert sum(ours["pred"] == theirs["pred"] for theirs, ours in inside) >= 0.9 * len(inside)
    assert sum(ours["ood"] == theirs["ood"] for theirs, ours in pairs) >= 0.9 * len(pairs)   # here 68 of 70
    outside = [ours["ood"] for _, ours in pairs if "/OOD/" in ours["path"]]
    assert sum(outside) >= 0.9 * len(outside)                                            # here all 36


def test_int8_on_an_artifact_fitted_without_it_is_refused_in_one_line(artifacts, tmp_path, capsys):
    config = artifacts["float32"] / "int8.yaml"
    config.write_text((artifacts["float32"] / "config.yaml").read_text().replace("precision: float32",
                                                                                 "precision: int8"))
    assert main(["score", str(FIXTURES / "OOD" / "natural"), "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert [line for line in error.splitlines() if "error:" in line] == [
        f"nero score: error: config key 'model.precision' is int8 but artifact {artifacts['float32']} holds no int8 "
        "model: fit one with `nero fit --config` on a config whose model.precision is int8"]


def test_an_altered_int8_model_is_refused(artifacts, tmp_path, capsys):
    copy = shutil.copytree(artifacts["int8"], tmp_path / "altered")
    weights = bytearray((copy / "model.int8.bin").read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    (copy / "model.int8.bin").write_bytes(bytes(weights))
    assert main(["score", str(FIXTURES / "OOD" / "natural"), "--config", str(copy / "config.yaml")]) == 2
    assert "does not match its manifest's SHA-256" in capsys.readouterr().err


def test_int8_off_the_cpu_is_refused_by_name():
    with pytest.raises(UserError, match="'model.precision' is int8, which runs with OpenVINO on the CPU only.*cuda"):
        check_int8_device(torch.device("cuda"))
