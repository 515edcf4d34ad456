"""`nero eval` end to end on a small real subset, its metrics checked against a direct computation.

The classifier is EfficientNet-Lite0 with ImageNet weights and a new 2-class head; the two "classes" are two
halves of Kvasir-SEG frames. What is under test is the command's mechanics and arithmetic, not the skill of
the classifier, so every detector's numbers are whatever they are, and the check is that they are computed
right: features, scores and scikit-learn metrics recomputed here without the evaluation module.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.cli import main
from pipeline.media.images import image_folder, list_images
from pipeline.model.classifier import load_classifier, save_weights
from pipeline.model.features import extract_features
from pipeline.model.preprocess import Preprocess
from pipeline.ood.detectors import DETECTORS
from pipeline.ood.nero import NeroScorer

FIXTURES = Path(__file__).resolve().parents[3] / "data"


def _link(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True)
    for file in files:
        (folder / file.name).symlink_to(file)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, demo_clip, demo_frames, make_clip) -> dict[str, Path]:
    from pipeline.model.pretrained import imagenet_efficientnet_lite0

    root = tmp_path_factory.mktemp("bench")
    # demo_frames are every 30th frame of the demo clip: carry their truth rows over to the short clip.
    truth = demo_clip.with_suffix(".truth.csv").read_text().splitlines()
    make_clip(root / "short.mp4", demo_frames)
    (root / "short.truth.csv").write_text("\n".join([truth[0], *truth[1::30][: len(demo_frames)]]) + "\n")
    train = list_images(FIXTURES / "kvasir-seg" / "train" / "images")[:24]
    test = list_images(FIXTURES / "kvasir-seg" / "val" / "images")[:8]
    _link(train[0::2], root / "train" / "a")
    _link(train[1::2], root / "train" / "b")
    _link(test[0::2], root / "test" / "a")
    _link(test[1::2], root / "test" / "b")
    _link(list_images(FIXTURES / "OOD" / "capsule")[:6], root / "capsule")
    torch.manual_seed(0)
    model = imagenet_efficientnet_lite0()
    model.reset_classifier(2)
    save_weights(model, root / "model.safetensors")
    config = root / "config.yaml"
    config.write_text(f"model:\n  arch: efficientnet_lite0\n  weights: {root / 'model.safetensors'}\n"
                      "  num_classes: 2\ndevice: cpu\n")
    args = ["eval", "--config", str(config), "--id-train", str(root / "train"),
            "--id-test", str(root / "test"),
            "--ood", str(FIXTURES / "OOD" / "natural"), "--ood", str(root / "capsule"),
            "--out", str(root / "out"), "--cache", str(root / "cache"), "--video", str(root / "short.mp4")]
    assert main(args) == 0
    return {"root": root, "config": config, "out": root / "out", "args": args}


def _metrics(id_scores: np.ndarray, ood_scores: np.ndarray) -> dict[str, float]:
    truth = np.r_[np.zeros(len(id_scores)), np.ones(len(ood_scores))]
    scores = np.r_[id_scores, ood_scores]
    threshold = np.sort(id_scores)[int(0.95 * len(id_scores))]   # docs NERO.md section 4
    return {"auroc": 100 * roc_auc_score(truth, scores), "fpr95": 100 * np.mean(ood_scores <= threshold),
            "aupr_in": 100 * average_precision_score(1 - truth, -scores),
            "aupr_out": 100 * average_precision_score(truth, scores)}


def test_every_detector_reports_every_set_and_the_files_are_written(bench):
    results = json.loads((bench["out"] / "results.json").read_text())
    assert list(results) == list(DETECTORS) and len(results) >= 13
    for by_set in results.values():
        assert list(by_set) == ["natural", "capsule", "all"]
        for metrics in by_set.values():
            assert set(metrics) == {"auroc", "fpr95", "aupr_in", "aupr_out"}
            assert all(0 <= v <= 100 for v in metrics.values())
    for name in ("results.md", "results.csv", "run.json", "roc_natural.png", "roc_capsule.png", "roc_all.png",
                 "hist_nero.png", "video.md", "video_nero.png"):
        assert (bench["out"] / name).stat().st_size > 0, name
    table = (bench["out"] / "results.md").read_text()
    assert all(f"| {method} |" in table for method in DETECTORS)
    assert len((bench["out"] / "results.csv").read_text().splitlines()) == 1 + 3 * len(DETECTORS)


def test_metrics_match_a_direct_computation(bench):
    root = bench["root"]
    classifier = load_classifier("efficientnet_lite0", root / "model.safetensors", 2)
    preprocess = Preprocess(224)
    train_paths, train_labels, _ = image_folder(root / "train")
    test_paths = image_folder(root / "test")[0]
    natural, capsule = list_images(FIXTURES / "OOD" / "natural"), list_images(root / "capsule")
    features = {name: extract_features(classifier, preprocess, paths)
                for name, paths in (("train", train_paths), ("test", test_paths), ("natural", natural),
                                    ("capsule", capsule))}
    msp = {name: -torch.softmax(logits, dim=1).amax(dim=1).numpy() for name, (_, logits, _) in features.items()}
    head = classifier.head
    nero = NeroScorer.fit(features["train"][0], train_labels, head.weight.detach(), head.bias.detach(),
                          n_components=len(train_paths))     # int(2 * 1280 / 3) capped at the 24 rows
    nero_scores = {name: nero.score(f) for name, (f, _, _) in features.items()}

    results = json.loads((bench["out"] / "results.json").read_text())
    for method, scores in (("msp", msp), ("nero", nero_scores)):
        expected = {"natural": _metrics(scores["test"], scores["natural"]),
                    "capsule": _metrics(scores["test"], scores["capsule"]),
                    "all": _metrics(scores["test"], np.r_[scores["natural"], scores["capsule"]])}
        for set_name, metrics in expected.items():
            for metric, value in metrics.items():
                assert results[method][set_name][metric] == pytest.approx(value, abs=1e-6), (method, set_name)
    saved = np.load(bench["out"] / "scores.npz")
    np.testing.assert_allclose(saved["nero/capsule"], nero_scores["capsule"], rtol=1e-5)

    with av.open(str(root / "short.mp4")) as container:
        # 4:2:0 BT.601: the monitor's conversion is OpenCV's (pipeline/media/video.py)
        frames = [torch.from_numpy(cv2.cvtColor(f.to_ndarray(), cv2.COLOR_YUV2RGB_I420))
                  for f in container.decode(video=0)]
    with torch.no_grad():
        frame_scores = nero.score(classifier(preprocess(torch.stack(frames)))[0])
    rows = (root / "short.truth.csv").read_text().splitlines()[1:]
    ood = np.array([int(row.split(",")[3]) for row in rows])
    video = json.loads((bench["out"] / "video.json").read_text())
    assert video["frames"] == len(frames) == len(ood) and 0 < ood.sum() < len(ood)
    assert video["thresholds"]["nero"] == pytest.approx(np.quantile(nero_scores["test"], 0.95), rel=1e-6)
    assert video["results"]["nero"]["none"]["auroc"] == pytest.approx(100 * roc_auc_score(ood, frame_scores),
                                                                      abs=1e-6)


def test_a_rerun_reads_the_cache(bench):
    cache = bench["root"] / "cache"
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    args = list(bench["args"])
    args[args.index("--out") + 1] = str(bench["root"] / "rerun")
    assert main([*args, "--detectors", "msp,odin,nero"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before
    first = json.loads((bench["out"] / "results.json").read_text())
    again = json.loads((bench["root"] / "rerun" / "results.json").read_text())
    assert list(again) == ["msp", "odin", "nero"] and all(again[m] == first[m] for m in again)


def test_user_errors_are_one_line(bench, capsys):
    args = list(bench["args"])
    assert main([*args, "--detectors", "msp,nonsense"]) == 2
    assert "unknown detector" in capsys.readouterr().err
    all_folder = bench["root"] / "all"
    all_folder.mkdir()
    (all_folder / "x.jpg").symlink_to(list_images(FIXTURES / "OOD" / "natural")[0])
    assert main([*args, "--ood", str(all_folder)]) == 2
    assert "distinct names" in capsys.readouterr().err
