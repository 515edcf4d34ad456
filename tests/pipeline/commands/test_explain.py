"""`nero explain` as a user runs it: on an image, on a video frame, and on a replay's audit file (report)."""

import json
import re
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pipeline.bundle import load_bundle
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.images import list_images, read_rgb
from pipeline.messages import encode, frame_message
from pipeline.report import alert_intervals, read_audit
from stages.alert import AlertStage
from stages.audit import AuditLog
from stages.score import ScoreStage
from stages.source import open_source

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
CLIP_SIZE = (320, 256)


@pytest.fixture(scope="module")
def config(small_benchmark, resnet_config, tmp_path_factory) -> Path:
    """`nero fit` of the random-weight ResNet-18 on the small benchmark: a real model + artifact pair."""
    out = tmp_path_factory.mktemp("explain") / "artifact"
    assert main(["fit", "--config", str(resnet_config), "--train", str(small_benchmark / "ID" / "train"),
                 "--val", str(small_benchmark / "ID" / "val"), "--out", str(out), "--n-components", "8",
                 "--k", "100"]) == 0
    return out / "config.yaml"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A short real clip: colonoscopy, a laparoscopic segment (OOD), colonoscopy again; H.264, 8 fps."""
    colon = [read_rgb(path) for path in list_images(SHARED / "kvasir-seg" / "val" / "images")[:8]]
    source = open_source(str(SHARED / "ood" / "laparoscopic" / "endo.mp4"), "endo")
    laparoscopic = [frame.image for frame in source if frame.index % 10 == 0]
    source.close()
    frames = [cv2.resize(image, CLIP_SIZE) for image in colon[:4] + laparoscopic[:8] + colon[4:]]
    path = tmp_path_factory.mktemp("clip") / "procedure.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = *CLIP_SIZE, "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def audit(config, clip, tmp_path_factory) -> Path:
    """A replay of the clip through the monitor's own stages (source, score, alert, messages, audit).

    The alert threshold is the clip's median score, so that alert intervals certainly occur (this
    random-weight model's own threshold says nothing about this clip).
    """
    bundle = load_bundle(load_config(config))
    score = ScoreStage(bundle)
    source = open_source(str(clip), clip.stem)
    scored = [(frame, score([frame.image])[0]) for frame in source]
    source.close()
    threshold = float(np.median([result.score for _, result in scored]))
    alert = AlertStage(threshold, on_count=2, window=3, off_after=2)
    path = tmp_path_factory.mktemp("replay") / "procedure.jsonl"
    log = AuditLog(path)
    for frame, result in scored:
        decision = alert(frame.stream, result.score)
        log.write(encode(frame_message(
            stream=frame.stream, seq=frame.index, frame=frame.index, pts=frame.pts,
            t_capture=frame.t_capture, t_publish=time.time(), pred=result.pred, prob=result.prob,
            score=result.score, threshold=threshold, ood=decision.ood, alert=decision.alert,
            explain=result.explain)))
    log.close()
    return path


def explain(config: Path, *arguments: object) -> int:
    """`nero explain ARGUMENTS --config CONFIG`; the exit status."""
    return main(["explain", *map(str, arguments), "--config", str(config)])


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable PNG"
    return image


def test_image_gets_three_pictures_and_the_alert_explanation(config, tmp_path, capsys):
    image = list_images(SHARED / "ood" / "capsule")[0]
    assert explain(config, image, "--out", tmp_path) == 0

    record = json.loads((tmp_path / f"{image.stem}.json").read_text())
    for name in ("heatmap", "neurons", "score"):
        height, width = read_png(tmp_path / f"{image.stem}_{name}.png").shape[:2]
        assert width >= 800 and height >= 300
    # the explanation is the one the monitor's score stage puts into the alert message for this frame
    (expected,) = ScoreStage(load_bundle(load_config(config)))([read_rgb(image)])
    assert record["explain"] == expected.explain
    assert record["score"] == pytest.approx(expected.score, rel=1e-5)
    assert record["heatmap"]["conservation_error"] < 1e-3
    assert "conservation error" in capsys.readouterr().out


def test_video_frame_by_index_or_time_matches_the_replay(config, clip, audit, tmp_path):
    replayed = {record["frame"]: record for record in read_audit(audit)}
    assert explain(config, clip, "--frame", 5, "--out", tmp_path) == 0
    assert explain(config, clip, "--time", replayed[9]["pts"] - 0.01, "--out", tmp_path) == 0
    for index in (5, 9):
        record = json.loads((tmp_path / f"{clip.stem}_f{index}.json").read_text())
        assert record["score"] == pytest.approx(replayed[index]["score"], rel=1e-4)
        assert record["explain"]["neurons"] == replayed[index]["explain"]["neurons"]


def test_report_for_a_replay(config, clip, audit, tmp_path, capsys):
    intervals = alert_intervals(read_audit(audit))
    assert intervals, "the replay fixture should have raised alerts"

    assert explain(config, audit, "--video", clip, "--out", tmp_path) == 0

    page = (tmp_path / "report.html").read_text()
    assert str(tmp_path / "report.html") in capsys.readouterr().out
    assert page.count('class="thumb"') == len(intervals)
    assert page.count('alt="score timeline"') == 1 and "differs from the audit" not in page
    for interval in intervals:   # each interval's peak frame is named, with its rescored score
        assert f"frame {interval.peak['frame']}," in page
    images = re.findall(r'src="data:image/(png|jpeg);base64,', page)
    assert len(images) == len(intervals) + 1        # everything inlined: the page stands alone


@pytest.mark.parametrize("arguments, message", [
    (["--frame", "3"], "--frame and --time apply to videos only"),
    (["--top", "0"], "--top must be at least 1"),
])
def test_image_argument_errors(config, arguments, message, tmp_path, capsys):
    image = list_images(SHARED / "ood" / "natural")[0]
    assert explain(config, image, "--out", tmp_path, *arguments) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


def test_video_and_audit_errors(config, clip, audit, tmp_path, capsys):
    assert explain(config, clip, "--frame", 999, "--out", tmp_path) == 2
    assert "ends before frame 999" in capsys.readouterr().err
    assert explain(config, audit, "--out", tmp_path) == 2
    assert "needs --video" in capsys.readouterr().err
    short = tmp_path / "short.jsonl"   # an audit naming frames the video does not have
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    for record in records:
        record["frame"] += 1000
    short.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    assert explain(config, short, "--video", clip, "--out", tmp_path) == 2
    assert "not the video this audit file was made from" in capsys.readouterr().err
