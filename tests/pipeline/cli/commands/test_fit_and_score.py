"""`nero fit` then `nero score` on real frames, as a user runs them, and the errors a user can hit."""

import json
import shutil
from pathlib import Path

import cv2
import pytest
import yaml

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.errors import UserError
from pipeline.media.images import list_images, read_rgb
from pipeline.model.bundle import load_bundle

FIXTURES = Path(__file__).resolve().parents[3] / "data"


def bank_folder(benchmark: Path) -> Path:
    """Unlabelled views for relevance-kNN's bank (here: the training polyps again, under another name)."""
    return benchmark / "ID" / "train" / "polyp"


@pytest.fixture(scope="module")
def fitted(small_benchmark, resnet_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "mine"
    code = main(["fit", "--config", str(resnet_config), "--train", str(small_benchmark / "ID" / "train"),
                 "--val", str(small_benchmark / "ID" / "val"), "--out", str(out), "--n-components", "8",
                 "--k", "100", "--bank", str(bank_folder(small_benchmark))])
    assert code == 0
    return out


def test_fit_writes_a_complete_artifact(fitted):
    manifest = json.loads((fitted / "manifest.json").read_text())
    assert manifest["class_names"] == ["mucosa", "polyp"]
    assert (manifest["feature_dim"], manifest["n_components"], manifest["k"]) == (512, 8, 100)
    assert manifest["lambda"] > 0 and manifest["threshold"] > 0
    assert manifest["model"]["arch"] == "resnet18" and len(manifest["model"]["sha256"]) == 64
    assert set(manifest["data"]["val_per_class"]) == {"mucosa", "polyp"}
    written = yaml.safe_load((fitted / "config.yaml").read_text())   # every section of the fitting config
    assert written["device"] == "cpu" and written["alert"]["on_count"] == 3
    assert written["artifact"] == "." and written["model"]["weights"] == "model.safetensors"  # the folder moves whole
    for name in ("arrays.safetensors", "model.safetensors", "config.yaml", "relevance_bank.safetensors"):
        assert (fitted / name).is_file()
    detectors = manifest["detectors"]
    assert detectors["nero"]["threshold"] == manifest["threshold"]
    assert detectors["relevance-knn"]["k"] == 20 and detectors["relevance-knn"]["feature_weight"] == 0.75
    assert 0 < detectors["relevance-knn"]["threshold"] <= 2
    banked = len(list_images(bank_folder(FIXTURES)))
    assert manifest["data"]["bank_windows"] == banked > 0


def test_the_bank_holds_the_training_rows_then_the_unlabelled_ones(fitted):
    from safetensors import safe_open

    manifest = json.loads((fitted / "manifest.json").read_text())
    with safe_open(str(fitted / "relevance_bank.safetensors"), "pt") as bank:
        ids, rows = json.loads(bank.metadata()["ids"]), bank.get_tensor("bank").shape[0]
    train = sum(manifest["data"]["train_per_class"].values())
    assert rows == len(ids) == train + manifest["data"]["bank_windows"]
    assert not any(i.startswith("bank/") for i in ids[:train]) and all(i.startswith("bank/") for i in ids[train:])


def test_the_live_detector_is_a_config_choice(fitted, small_benchmark, tmp_path):
    manifest = json.loads((fitted / "manifest.json").read_text())
    assert yaml.safe_load((fitted / "config.yaml").read_text())["detector"] == "relevance-patch"   # the default
    nero = fitted / "nero.yaml"
    nero.write_text((fitted / "config.yaml").read_text().replace("detector: relevance-patch", "detector: nero"))
    ood = small_benchmark / "OOD" / "capsule"
    for config, threshold in ((fitted / "config.yaml", manifest["detectors"]["relevance-patch"]["threshold"]),
                              (nero, manifest["threshold"])):
        jsonl = tmp_path / f"{config.stem}.jsonl"
        assert main(["score", str(ood), "--config", str(config), "--jsonl", str(jsonl)]) == 0
        records = [json.loads(line) for line in jsonl.read_text().splitlines()]
        assert {record["threshold"] for record in records} == {round(threshold, 6)}
    knn = [json.loads(line) for line in (tmp_path / "config.jsonl").read_text().splitlines()]
    # distances between unit vectors: between 0 and 2, unlike NERO's unbounded score
    assert all(0 <= record["score"] <= 2 for record in knn)


def test_the_artifact_records_its_features_precision_and_another_precision_is_told(fitted, caplog):
    """The fit's features come from the forward the monitor runs; loading the artifact with another precision
    warns that its false-alarm rate holds only roughly (bfloat16 raised one on the bundled calibration video)."""
    manifest = json.loads((fitted / "manifest.json").read_text())
    assert manifest["model"]["precision"] == "float32"
    config = load_config(fitted / "config.yaml")
    config.model.precision = "bfloat16"
    with caplog.at_level("WARNING"):
        bundle = load_bundle(config)
    if "no bfloat16 instructions" in caplog.text:       # this CPU runs it in float32: nothing to tell
        assert "fitted with" not in caplog.text
    else:
        assert f"{fitted} was fitted with float32 features but the model runs in bfloat16" in caplog.text
        assert bundle.forward.precision == "bfloat16"


def test_an_artifact_folder_moved_elsewhere_still_works(fitted, small_benchmark, tmp_path):
    moved = shutil.copytree(fitted, tmp_path / "moved" / "artifact")
    jsonl = tmp_path / "moved.jsonl"
    image = next((small_benchmark / "OOD" / "natural").iterdir())
    assert main(["score", str(image), "--config", str(moved / "config.yaml"), "--jsonl", str(jsonl)]) == 0
    assert len(jsonl.read_text().splitlines()) == 1


def test_score_prints_one_line_per_image(fitted, small_benchmark, tmp_path, capsys):
    jsonl = tmp_path / "scores.jsonl"
    ood = small_benchmark / "OOD"
    assert main(["score", str(ood / "capsule"), str(ood / "natural"), "--config", str(fitted / "config.yaml"),
                 "--jsonl", str(jsonl)]) == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == len(list((ood / "capsule").iterdir())) + len(list((ood / "natural").iterdir()))
    for record in records:
        assert set(record) == {"path", "pred", "prob", "detector", "score", "threshold", "ood", "reason"}
        assert record["detector"] == "relevance-patch"
        assert record["pred"] in ("mucosa", "polyp") and 0.5 <= record["prob"] <= 1
        assert record["ood"] == (record["score"] > record["threshold"] or record["reason"] is not None)
    assert "images scored" in capsys.readouterr().err


def test_missing_input_is_one_line_error(fitted, tmp_path, capsys):
    assert main(["score", str(tmp_path / "nope.jpg"), "--config", str(fitted / "config.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such file or directory" in err


def test_artifact_of_another_model_is_refused(fitted, resnet_config, tmp_path, capsys):
    # resnet_config's own weights are random ones fitted nowhere; point it at the artifact fitted above
    # after changing the weights file: the checksum must no longer match
    other = tmp_path / "other.safetensors"
    other.write_bytes((fitted / "model.safetensors").read_bytes() + b" ")
    document = yaml.safe_load((fitted / "config.yaml").read_text())
    document["model"]["weights"], document["artifact"] = str(other), str(fitted)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(document))
    assert main(["score", str(fitted / "config.yaml"), "--config", str(config)]) == 2
    assert "refit it with `nero fit`" in capsys.readouterr().err


def test_knn_k_must_be_positive(small_benchmark, resnet_config, tmp_path, capsys):
    assert main(["fit", "--config", str(resnet_config), "--train", str(small_benchmark / "ID" / "train"),
                 "--val", str(small_benchmark / "ID" / "val"), "--out", str(tmp_path / "a"), "--knn-k", "0"]) == 2
    assert "--knn-k must be at least 1" in capsys.readouterr().err and not (tmp_path / "a").exists()


@pytest.fixture(scope="module")
def calibration_clip(tmp_path_factory, make_clip):
    """In-distribution video: 96 s at 5 fps of slow pans across the fixture's Kvasir-SEG validation frames."""
    frames = []
    images = [read_rgb(path) for path in list_images(FIXTURES / "kvasir-seg" / "val" / "images")]
    per_image = 480 // len(images)
    for image in images:
        side = min(image.shape[:2]) // 2
        for step in range(per_image):
            x = step * (image.shape[1] - side) // per_image
            frames.append(cv2.resize(image[:side, x:x + side], (128, 128), interpolation=cv2.INTER_AREA))
    return make_clip(tmp_path_factory.mktemp("calibration") / "calibration.mp4", frames, fps=5)


def test_fit_with_a_calibration_video_sets_operating_points(small_benchmark, resnet_config, calibration_clip,
                                                            tmp_path, capsys):
    out = tmp_path / "calibrated"
    assert main(["fit", "--config", str(resnet_config), "--train", str(small_benchmark / "ID" / "train"),
                 "--val", str(small_benchmark / "ID" / "val"), "--out", str(out), "--n-components", "8",
                 "--calibration-video", str(calibration_clip)]) == 0
    assert "operating point: 1 false alarm(s) per hour -> alert threshold" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    for name, entry in manifest["detectors"].items():
        points = entry["operating_points"]
        assert points["video"] == "calibration.mp4" and points["chunks"] == 24, name
        thresholds = [points["thresholds"][rate] for rate in ("0.5", "1", "10", "120")]
        assert thresholds == sorted(thresholds, reverse=True), name   # fewer false alarms: a higher bar
    bundle = load_bundle(load_config(out / "config.yaml"))
    assert bundle.alert_threshold == pytest.approx(manifest["detectors"]["relevance-patch"]["operating_points"]
                                                   ["thresholds"]["1"])
    # a rate the calibration does not cover, and a rule it was not calibrated for, are refused by key
    config = yaml.safe_load((out / "config.yaml").read_text())
    for change, key in (({"false_alarms_per_hour": 1000}, "alert.false_alarms_per_hour"),
                        ({"on_count": 2}, "alert.on_count")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({**config, "alert": {**config["alert"], **change}, "artifact": str(out),
                                       "model": {**config["model"], "weights": str(out / "model.safetensors")}}))
        with pytest.raises(UserError, match=key):
            load_bundle(load_config(bad))
