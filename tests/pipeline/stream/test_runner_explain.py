"""Live heatmaps (`nero live --explain`): the frame that turns an alert on comes back as a PNG on
explain.<stream>, carrying that frame's seq, and every per-frame message still goes out, in order and without
a gap. Real parts only: the model, the spawned worker, ZeroMQ on loopback."""

import itertools
import json
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import zmq

from pipeline.config import ExplainConfig
from pipeline.stream.report import RunReport
from pipeline.stream.runner import Runner, RunOptions, RunSettings, StreamSpec

# Frames 920-969 of the demo clip: the start of its capsule segment (frame 925), where the bundled default's
# alert turns on two frames in when the clip is replayed whole (measured 2026-12-01, LP-FT model).
FIRST, COUNT = 920, 50


@pytest.fixture(scope="module")
def alerting_clip(demo_clip, make_clip, tmp_path_factory) -> Path:
    with av.open(str(demo_clip)) as container:
        frames = [frame.to_ndarray(format="rgb24")
                  for frame in itertools.islice(container.decode(video=0), FIRST, FIRST + COUNT)]
    return make_clip(tmp_path_factory.mktemp("clips") / "laparoscopic.mp4", frames)


def run_in_background(runner: Runner) -> tuple[threading.Thread, list[RunReport]]:
    report: list[RunReport] = []
    thread = threading.Thread(target=lambda: report.append(runner.run()), daemon=True)
    thread.start()
    return thread, report


def test_live_explain_publishes_the_alert_on_frame_as_png_without_holding_frames_back(bundle, alerting_clip):
    # The worker's start and its queued heatmap may take long on a busy machine: the shutdown waits for them
    # (explain.close_s) instead of cutting the worker off, so what is asserted does not depend on the load.
    settings = RunSettings(explain=ExplainConfig(close_s=300.0))
    runner = Runner(bundle, [StreamSpec("cam", str(alerting_clip))],
                    RunOptions(live=True, endpoint="tcp://127.0.0.1:*", explain=True), settings)
    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    topics = (b"alert.cam", b"event.cam", b"explain.cam")
    for topic in topics:
        socket.setsockopt(zmq.SUBSCRIBE, topic)
    socket.connect(runner.endpoint)
    deadline = time.monotonic() + 5
    while not runner.publisher.wait_for_subscribers(len(topics), 0.05):
        assert time.monotonic() < deadline, "subscriptions did not arrive"
    thread, report = run_in_background(runner)
    thread.join(360)
    assert not thread.is_alive(), "runner did not finish"
    received = []
    while socket.poll(500):
        received.append(socket.recv_multipart())
    socket.close()

    messages = [(topic, json.loads(payload)) for topic, payload, *_ in received]
    frames = [m for topic, m in messages if topic == b"alert.cam"]
    (result,) = report
    assert [m["seq"] for m in frames] == list(range(result.frames["cam"]))           # all there, in order
    assert result.frames["cam"] + result.drops["cam"] == COUNT and result.errors == []
    alert_on = [m for topic, m in messages if topic == b"event.cam" and m["event"] == "alert_on"]
    assert alert_on, "the clip raised no alert: nothing to explain"
    alerting = {m["seq"] for m in frames if m["alert"]}

    pictures = [parts for parts in received if parts[0] == b"explain.cam"]
    heatmaps = [parts for parts in pictures if json.loads(parts[1])["type"] == "explain"]
    nearest = [json.loads(parts[1]) for parts in pictures if json.loads(parts[1])["type"] == "nearest"]
    # every alert_on names its nearest training window, and its thumbnail follows it
    assert sorted(m["seq"] for m in nearest) == sorted(m["last_seq"] for m in alert_on)
    assert heatmaps, f"no heatmap published; worker {result.explain}"
    for _, header, png in heatmaps:
        header = json.loads(header)
        assert header["type"] == "explain" and header["stream"] == "cam" and header["seq"] in alerting
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[2] == 3 and header["conservation_error"] < 1e-3
    assert {json.loads(h[1])["seq"] for h in heatmaps} <= {m["last_seq"] for m in alert_on}

    stats = result.explain
    assert stats["submitted"] + stats["dropped"] == len(alert_on) and stats["done"] == len(heatmaps)
    assert stats["failed"] == 0 and result.as_dict()["explain"] == stats
    assert f"{stats['done']} published" in result.format()
