"""`nero explain` as a user runs it: on an image, on a video frame, and on a replay's audit file (report)."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from pipeline.cli import main
from pipeline.explain.report import alert_intervals, read_audit
from pipeline.media.images import list_images, read_rgb
from stages.forward import ForwardStage
from stages.score import ScoreStage

FIXTURES = Path(__file__).resolve().parents[3] / "data"


@pytest.fixture(scope="module")
def config(bundle, monitor_config, demo_frames, tmp_path_factory) -> Path:
    """A config file for the suite's bundle, the alert threshold moved to the median score of the short
    clip's frames, so that replaying the clip certainly raises alerts (the operating point is not under test).
    """
    folder = tmp_path_factory.mktemp("explain")
    artifact = shutil.copytree(bundle.artifact.path, folder / "artifact")
    terms = bundle.infer([torch.from_numpy(frame) for frame in demo_frames]).terms
    manifest = json.loads((artifact / "manifest.json").read_text())
    settings = monitor_config
    median = float(terms.score.median())   # of the detector the bundle alerts on
    detectors = manifest.setdefault("detectors", {"nero": {"threshold": manifest["threshold"]}})
    detectors[settings.detector]["threshold"] = median
    if settings.detector == "nero":
        manifest["threshold"] = median
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    model = dataclasses.asdict(settings.model) | {"weights": str(settings.resolve(settings.model.weights))}
    document = {"model": model, "preprocess": dataclasses.asdict(settings.preprocess),
                "artifact": str(artifact), "device": "cpu", "detector": settings.detector,
                "alert": {"false_alarms_per_hour": None}}   # the alert follows the per-frame threshold
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def audit(config, short_clip, tmp_path_factory) -> Path:
    """`nero replay` of the short clip (real frames, in-distribution and OOD segments) with an audit file."""
    path = tmp_path_factory.mktemp("replay") / "short.jsonl"
    assert main(["replay", str(short_clip), "--config", str(config), "--jsonl", str(path),
                 "--publish", "tcp://127.0.0.1:*"]) == 0
    return path


def explain(config: Path, *arguments: object) -> int:
    """`nero explain ARGUMENTS --config CONFIG`; the exit status."""
    return main(["explain", *map(str, arguments), "--config", str(config)])


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable PNG"
    return image


def test_image_gets_five_pictures_and_the_alert_explanation(config, bundle, tmp_path, capsys):
    image = list_images(FIXTURES / "OOD" / "capsule")[0]
    assert explain(config, image, "--out", tmp_path) == 0

    record = json.loads((tmp_path / f"{image.stem}.json").read_text())
    names = ("heatmap", "neurons", "score", "neighbour", "patches")      # the default, relevance-patch
    assert record["detector"] == bundle.detector == "relevance-patch"
    assert record["figures"] == [f"{image.stem}_{name}.png" for name in names]
    for name in names:
        height, width = read_png(tmp_path / f"{image.stem}_{name}.png").shape[:2]
        assert width >= 700 and height >= 300
    # the explanation is the one the monitor's score stage puts into the alert message for this frame
    (expected,) = ScoreStage(bundle)(ForwardStage(bundle)([read_rgb(image)]))
    assert record["explain"] == expected.explain
    assert record["score"] == pytest.approx(expected.score, rel=1e-5)
    assert record["heatmap"]["conservation_error"] < 1e-3
    assert "conservation error" in capsys.readouterr().out


def test_video_frame_by_index_or_time_matches_the_replay(config, short_clip, audit, tmp_path):
    replayed = {record["frame"]: record for record in read_audit(audit)}
    assert explain(config, short_clip, "--frame", 5, "--out", tmp_path) == 0
    assert explain(config, short_clip, "--time", replayed[9]["pts"] - 0.01, "--out", tmp_path) == 0
    for index in (5, 9):
        record = json.loads((tmp_path / f"{short_clip.stem}_f{index}.json").read_text())
        assert record["score"] == pytest.approx(replayed[index]["score"], rel=1e-4)
        assert record["explain"]["neurons"] == replayed[index]["explain"]["neurons"]


def test_report_for_a_replay(config, short_clip, audit, tmp_path, capsys):
    intervals = alert_intervals(read_audit(audit))
    assert intervals, "the replay fixture should have raised alerts"

    assert explain(config, audit, "--video", short_clip, "--out", tmp_path) == 0

    page = (tmp_path / "report.html").read_text()
    assert str(tmp_path / "report.html") in capsys.readouterr().out
    assert page.count('class="thumb"') == len(intervals)
    assert page.count('alt="score timeline"') == 1 and "differs from the audit" not in page
    for interval in intervals:   # each interval's peak frame is named, with its rescored score
        assert f"frame {interval.peak['frame']}," in page
    images = re.findall(r'src="data:image/(png|jpeg);base64,', page)
    # everything inlined, the page stands alone: timeline, peak thumbnails, nearest training windows
    assert len(images) == 1 + 2 * len(intervals)
    assert "FALSE ALARM" not in page and "ground truth" not in page     # no truth beside this video


def test_report_with_the_truth_marks_false_alarms_and_delays(config, short_clip, audit, demo_clip, tmp_path):
    """With VIDEO.truth.csv beside the video, intervals are judged and each OOD segment gets its delay."""
    video = shutil.copy(short_clip, tmp_path / "short.mp4")
    rows = demo_clip.with_suffix(".truth.csv").read_text().splitlines()
    (tmp_path / "short.truth.csv").write_text("\n".join([rows[0], *rows[1::30][:60]]) + "\n")  # as demo_frames
    assert explain(config, audit, "--video", video, "--out", tmp_path / "report") == 0
    page = (tmp_path / "report" / "report.html").read_text()
    intervals = alert_intervals(read_audit(audit))
    assert page.count("FALSE ALARM") + page.count("true alert") == len(intervals)
    for segment in ("laparoscopic", "capsule", "chest-xray"):
        assert re.search(rf"{segment} (MISSED|\d+\.\d\d s)", page), segment
    assert "per minute of in-distribution video" in page


@pytest.mark.parametrize("arguments, message", [
    (["--frame", "3"], "--frame and --time apply to videos only"),
    (["--top", "0"], "--top must be at least 1"),
])
def test_image_argument_errors(config, arguments, message, tmp_path, capsys):
    image = list_images(FIXTURES / "OOD" / "natural")[0]
    assert explain(config, image, "--out", tmp_path, *arguments) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


def test_video_and_audit_errors(config, short_clip, audit, tmp_path, capsys):
    assert explain(config, short_clip, "--frame", 999, "--out", tmp_path) == 2
    assert "ends before frame 999" in capsys.readouterr().err
    assert explain(config, audit, "--out", tmp_path) == 2
    assert "needs --video" in capsys.readouterr().err
    short = tmp_path / "short.jsonl"   # an audit naming frames the video does not have
    records = read_audit(audit)
    for record in records:
        record["frame"] += 1000
    short.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert explain(config, short, "--video", short_clip, "--out", tmp_path) == 2
    assert "not the video this audit file was made from" in capsys.readouterr().err
