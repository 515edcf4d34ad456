"""Replay report pieces: reading the audit file, alert intervals, finding frames, the timeline picture.

The whole report (heatmaps, rescoring, HTML) is tested end to end in tests/pipeline/commands/test_explain.py.
"""

from itertools import islice
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.explain.report import alert_intervals, frames_at, read_audit, timeline_png
from pipeline.messages import encode, event_message, frame_message

VIDEO = Path(__file__).resolve().parents[2] / "data" / "laparoscopic.mp4"


def frame(stream: str, index: int, score: float, alert: bool) -> dict:
    return frame_message(stream=stream, seq=index, frame=index, pts=index / 25, t_capture=0.0, t_publish=0.0,
                         pred="polyp", detector="relevance-knn", prob=0.9, score=score, threshold=1.0,
                         ood=score > 1.0, reason="score" if score > 1.0 else None, alert=alert,
                         explain={"nearest": "polyp", "neurons": [[3, 0.5]]})


def write_audit(path: Path, messages: list[dict]) -> Path:
    path.write_text("".join(encode(message) + "\n" for message in messages))
    return path


ALERTS = [True, True, False, False, True, False, True, True, True]     # intervals 0-1, 4, 6-8 (at the end)
SCORES = [1.5, 2.0, 0.5, 0.4, 3.0, 0.2, 1.2, 4.0, 1.1]


def test_audit_is_read_per_stream_in_frame_order_skipping_events(tmp_path):
    messages = [event_message("cam", "start", -1, 0.0)]
    records = [frame("cam", i, s, a) for i, (s, a) in enumerate(zip(SCORES, ALERTS, strict=True))]
    messages += records[::-1]
    messages.append(event_message("cam", "stop", 8, 1.0))
    records = read_audit(write_audit(tmp_path / "a.jsonl", messages))
    assert [record["frame"] for record in records] == list(range(len(SCORES)))


def test_several_streams_need_a_name(tmp_path):
    path = write_audit(tmp_path / "a.jsonl", [frame("left", 0, 1.0, False), frame("right", 0, 2.0, True)])
    with pytest.raises(UserError, match="several streams"):
        read_audit(path)
    assert read_audit(path, stream="right")[0]["score"] == 2.0
    with pytest.raises(UserError, match="no stream 'middle'"):
        read_audit(path, stream="middle")


def test_unreadable_audits_are_user_errors(tmp_path):
    broken = tmp_path / "a.jsonl"
    broken.write_text(encode(frame("cam", 0, 1.0, False)) + "\nnot json\n")
    with pytest.raises(UserError, match="a.jsonl:2 is not a JSON line"):
        read_audit(broken)
    with pytest.raises(UserError, match="no frame messages"):
        read_audit(write_audit(tmp_path / "b.jsonl", [event_message("cam", "start", -1, 0.0)]))
    with pytest.raises(UserError, match="cannot read"):
        read_audit(tmp_path / "missing.jsonl")


def test_alert_intervals_and_their_peaks():
    records = [frame("cam", i, s, a) for i, (s, a) in enumerate(zip(SCORES, ALERTS, strict=True))]
    intervals = alert_intervals(records)
    assert [(i.start["frame"], i.end["frame"]) for i in intervals] == [(0, 1), (4, 4), (6, 8)]
    assert [i.peak["frame"] for i in intervals] == [1, 4, 7]
    assert [i.number for i in intervals] == [1, 2, 3]
    assert alert_intervals([frame("cam", 0, 0.1, False)]) == []


def test_timeline_is_a_png():
    records = [frame("cam", i, s, a) for i, (s, a) in enumerate(zip(SCORES, ALERTS, strict=True))]
    image = cv2.imdecode(np.frombuffer(timeline_png(records, alert_intervals(records), 1.0), np.uint8), 1)
    assert image.shape[1] >= 1000 and image.shape[0] >= 300


def test_frames_are_found_by_decode_order_index():
    wanted = [0, 7, 120]
    found = frames_at(VIDEO, wanted)
    with av.open(str(VIDEO)) as container:      # an independent count of decoded frames
        decoded = [cv2.cvtColor(f.to_ndarray(), cv2.COLOR_YUV2RGB_I420)         # 4:2:0 BT.601, as the monitor
                   for f in islice(container.decode(video=0), 121)]
    assert sorted(found) == wanted
    for index in wanted:
        assert np.array_equal(found[index], decoded[index])
    assert frames_at(VIDEO, [10_000]) == {}
    assert frames_at(VIDEO, []) == {}
