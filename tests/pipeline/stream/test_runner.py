"""The runner with real parts: decoding, the model, ZeroMQ on loopback, an MPEG-TS server over TCP.

Replay must be lossless and ordered; live must never wait for a slow subscriber, must let a late subscriber
join at the current sequence, and must reconnect to a network stream that goes away and comes back.
"""

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest
import zmq

from pipeline.client import AlertSubscriber
from pipeline.config import StreamConfig
from pipeline.media.video import PyAVSource, open_source
from pipeline.stream.report import RunReport
from pipeline.stream.runner import Runner, RunOptions, RunSettings, StreamSpec

# An MPEG-TS server: listens on URL, sends FRAMES frames of a clip at 50 fps, then holds the connection for
# HOLD seconds (a stalled stream) or closes it (HOLD = 0).
TS_SERVER = r"""
import sys, time, av
url, clip, frames, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
with av.open(clip) as source:
    images = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), source.decode(video=0))]
out = av.open(url + "?listen=1", mode="w", format="mpegts", options={"flush_packets": "1"})
stream = out.add_stream("libx264", rate=25)
stream.height, stream.width = images[0].shape[:2]
stream.pix_fmt = "yuv420p"
stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
start = time.perf_counter()
for i in range(frames):
    frame = av.VideoFrame.from_ndarray(images[i % len(images)], format="rgb24")
    frame.pts = i
    out.mux(stream.encode(frame))
    time.sleep(max(0.0, start + (i + 1) / 50 - time.perf_counter()))
time.sleep(hold)
out.mux(stream.encode(None))
out.close()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_ts(url: str, clip: Path, frames: int, hold: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TS_SERVER, url, str(clip), str(frames), str(hold)])


def stream_settings(**values) -> RunSettings:
    """Runtime settings with some stream values changed (the model bundle is not involved)."""
    return RunSettings(stream=StreamConfig(**values))


class Started:
    """A runner running in a background thread; `finish()` joins it and returns its report."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.report: RunReport | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.report = self.runner.run()

    def finish(self, timeout: float = 60.0) -> RunReport:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "runner did not finish"
        return self.report


def receive_until(subscriber: AlertSubscriber, done, timeout: float = 30.0) -> list[dict]:
    """Messages until `done(message)` is true for one (included) or `timeout` passes."""
    received, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = subscriber.receive(timeout_s=0.2)
        if message is not None:
            received.append(message)
            if done(message):
                return received
    raise AssertionError(f"condition not met in {timeout} s; got {len(received)} messages")


def frames_of(received: list[dict]) -> list[dict]:
    return [m for m in received if m["type"] == "frame"]


def stalled_subscriber(runner: Runner) -> zmq.Socket:
    """A SUB socket to alert.* whose queues and buffers are full before the run starts: it does not read.

    Filled with 10 kB messages until the publisher refuses one (lossless) or ZeroMQ must have started to drop
    them (20 MB: more than its queue of publish.high_water_mark messages and the kernel's buffers hold).
    """
    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.setsockopt(zmq.RCVHWM, 10)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SUBSCRIBE, b"alert.")
    socket.connect(runner.endpoint)
    wait_subscribed(runner)
    filler = json.dumps({"type": "filler", "padding": "x" * 10_000})
    for _ in range(2000):
        if not runner.publisher.try_send("alert.filler", filler):
            break
    return socket


def read_all(socket: zmq.Socket, timeout_ms: int = 200) -> list[dict]:
    """Whatever a socket has received, until nothing arrives for `timeout_ms`."""
    received = []
    while socket.poll(timeout_ms):
        received.append(json.loads(socket.recv_multipart()[1]))
    return received


def wait_subscribed(runner: Runner, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while not runner.publisher.wait_for_subscribers(count, 0.05):
        assert time.monotonic() < deadline, "subscription did not arrive"


# -- replay --------------------------------------------------------------------------------------------------

def test_replay_publishes_every_frame_once_in_order_and_the_audit_matches(bundle, short_clip, tmp_path):
    audit = tmp_path / "audit.jsonl"
    spec = StreamSpec("clip", str(short_clip), open_source(str(short_clip), "clip"))
    runner = Runner(bundle, [spec], RunOptions(endpoint="tcp://127.0.0.1:*", jsonl=audit, wait_subscribers=1))
    subscriber = AlertSubscriber(runner.endpoint, topics=["alert.", "event."])
    started = Started(runner)
    payloads = []
    while (message := subscriber.receive(timeout_s=30)) is not None:
        payloads.append(subscriber.last_payload.decode())
        if message["type"] == "event" and message["event"] == "stop":
            break
    report = started.finish()
    subscriber.close()

    assert audit.read_text().splitlines() == payloads
    received = [json.loads(p) for p in payloads]
    frames = frames_of(received)
    assert [m["seq"] for m in frames] == list(range(60)) and [m["frame"] for m in frames] == list(range(60))
    assert [m["pts"] for m in frames] == pytest.approx([i / 25 for i in range(60)])
    first = frames[0]
    assert set(first) == {"v", "type", "stream", "seq", "frame", "pts", "t_capture", "t_publish", "pred",
                          "prob", "detector", "score", "threshold", "alert_threshold", "ood", "reason", "alert",
                          "explain"}
    assert first["pred"] in bundle.class_names and first["threshold"] == pytest.approx(bundle.threshold)
    assert first["alert_threshold"] == pytest.approx(bundle.alert_threshold or bundle.threshold)
    assert all(m["detector"] == bundle.detector for m in frames)
    assert all(m["ood"] == (m["score"] > m["threshold"]) and m["reason"] == ("score" if m["ood"] else None)
               for m in frames)                                  # real frames: the quality guard stays quiet
    assert all(m["t_capture"] <= m["t_publish"] for m in frames)
    events = [m["event"] for m in received if m["type"] == "event"]
    assert events[0] == "start" and events[-1] == "stop" and received[-1]["reason"] == "end of stream"
    assert events.count("alert_on") == report.alerts["clip"]
    assert subscriber.gaps == [] and report.frames == {"clip": 60} and report.drops == {"clip": 0}
    assert report.errors == [] and report.metrics["latency_frames"] == 40


def test_the_gpu_paths_yuv_frames_give_the_rgb_paths_alerts_and_annotated_video(bundle, short_clip, tmp_path):
    """YUV planes (what NVDEC leaves in GPU memory), run here on the CPU through the whole monitor: scored after
    resizing the planes, converted to RGB only for the annotated video and the heatmaps."""
    runs = {}
    for name, yuv_device in (("rgb", None), ("yuv", "cpu")):
        audit = tmp_path / f"{name}.jsonl"
        source = PyAVSource(str(short_clip), "clip", yuv_device=yuv_device)
        report = Runner(bundle, [StreamSpec("clip", str(short_clip), source)],
                        RunOptions(endpoint="tcp://127.0.0.1:*", jsonl=audit, explain=True,
                                   annotate=tmp_path / f"{name}.mp4")).run()
        assert report.errors == [] and report.frames == {"clip": 60}
        # every alert_on is explained, or dropped and counted where it found the worker's queue full
        explained = report.explain
        assert explained["done"] + explained["dropped"] == report.alerts["clip"] and explained["done"] > 0
        assert explained["failed"] == 0
        runs[name] = [json.loads(line) for line in audit.read_text().splitlines()]
    rgb, yuv = frames_of(runs["rgb"]), frames_of(runs["yuv"])
    # The same picture reaches the model both ways (tests/pipeline/media/test_yuv.py), so the same decisions.
    assert [(m["alert"], m["pred"], m["ood"]) for m in rgb] == [(m["alert"], m["pred"], m["ood"]) for m in yuv]
    assert [m["score"] for m in yuv] == pytest.approx([m["score"] for m in rgb], rel=1e-4)
    assert any(m["alert"] for m in rgb)
    with av.open(str(tmp_path / "yuv.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 60


def test_replay_waits_for_a_lagging_subscriber_instead_of_dropping(bundle, short_clip):
    runner = Runner(bundle, [StreamSpec("clip", str(short_clip), open_source(str(short_clip), "clip"))],
                    RunOptions(endpoint="tcp://127.0.0.1:*"))
    lagging = stalled_subscriber(runner)
    started = Started(runner)
    published = -1
    while published != len(runner.metrics):      # wait until publishing has stalled on the full subscriber
        published = len(runner.metrics)
        started.thread.join(0.5)
    assert started.thread.is_alive() and published < 60
    received = []
    while len(received) < 60:                     # reading makes room: the replay goes on
        message = json.loads(lagging.recv_multipart()[1])
        if message["type"] == "frame":
            received.append(message["seq"])
    report = started.finish()
    lagging.close()
    assert received == list(range(60)) and report.frames == {"clip": 60}


def test_stop_drains_and_leaves_a_complete_audit(bundle, demo_frames, make_clip, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", demo_frames * 4)
    audit = tmp_path / "audit.jsonl"
    runner = Runner(bundle, [StreamSpec("clip", str(clip), open_source(str(clip), "clip"))],
                    RunOptions(endpoint="tcp://127.0.0.1:*", jsonl=audit, realtime=True))
    started = Started(runner)
    while len(runner.metrics) < 10:
        started.thread.join(0.05)
    runner.stop()
    report = started.finish()
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    frames = frames_of(lines)
    assert 10 <= len(frames) < 240 and [m["seq"] for m in frames] == list(range(len(frames)))
    assert lines[-1]["event"] == "stop" and lines[-1]["reason"] == "stopped"
    assert report.frames["clip"] == len(frames) and report.errors == []


def test_realtime_replay_counts_latency_from_each_frame_due_and_a_lone_stream_never_waits_to_batch(
        bundle, short_clip, tmp_path):
    # A paced file stands in for a capture card: latency counts from each frame's presentation moment. Had the
    # stamp been taken when the decoder read the frame ahead, frame n would be stamped about one frame
    # interval early, and the latency would count that wait.
    audit = tmp_path / "audit.jsonl"
    report = Runner(bundle, [StreamSpec("clip", str(short_clip), open_source(str(short_clip), "clip"))],
                    RunOptions(endpoint="tcp://127.0.0.1:*", jsonl=audit, realtime=True)).run()
    frames = frames_of([json.loads(line) for line in audit.read_text().splitlines()])
    assert len(frames) == 60
    start = frames[0]["t_capture"] - frames[0]["pts"]
    assert all(m["t_capture"] - start >= m["pts"] - 0.002 for m in frames)
    # One stream's next frame is 40 ms away: the 10 ms batch window would only delay every frame.
    assert report.metrics["latency_ms"]["batch"]["p50"] < 5.0


def test_first_frame_waits_for_subscribers_and_a_stop_while_waiting_runs_nothing(bundle, short_clip,
                                                                                 tmp_path):
    audit = tmp_path / "audit.jsonl"
    runner = Runner(bundle, [StreamSpec("clip", str(short_clip), open_source(str(short_clip), "clip"))],
                    RunOptions(endpoint="tcp://127.0.0.1:*", jsonl=audit, wait_subscribers=2))
    subscriber = AlertSubscriber(runner.endpoint)
    started = Started(runner)
    deadline = time.monotonic() + 5
    while runner.publisher.subscriptions < 1:     # counted by the runner's thread (sockets are not shared)
        assert time.monotonic() < deadline, "subscription did not arrive"
        started.thread.join(0.05)
    started.thread.join(0.3)
    assert started.thread.is_alive() and len(runner.metrics) == 0   # one subscription of two: still waiting
    runner.stop()
    report = started.finish()
    subscriber.close()
    assert report.frames == {"clip": 0} and audit.read_text() == ""


def test_a_stream_that_breaks_ends_replay_with_an_error(bundle, short_clip):
    url = f"tcp://127.0.0.1:{free_port()}"
    server = serve_ts(url, short_clip, frames=30, hold=30)    # 30 frames, then silence
    try:
        quick = stream_settings(read_timeout_s=1.0)
        deadline = time.monotonic() + 10
        while True:
            try:
                opened = open_source(url, "net", timeout_s=1.0)
                break
            except Exception:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.05)
        runner = Runner(bundle, [StreamSpec("net", url, opened)], RunOptions(endpoint="tcp://127.0.0.1:*"), quick)
        report = runner.run()
    finally:
        server.kill()
        server.wait()
    assert len(report.errors) == 1 and "net: stream broke after" in report.errors[0]
    assert "no data for 1 s" in report.errors[0] and report.frames["net"] > 20


# -- live ----------------------------------------------------------------------------------------------------

def test_live_slow_subscriber_loses_messages_but_never_holds_the_pipeline(bundle, short_clip):
    runner = Runner(bundle, [StreamSpec("cam", str(short_clip))],
                    RunOptions(live=True, endpoint="tcp://127.0.0.1:*"))
    stalled = stalled_subscriber(runner)
    reader = AlertSubscriber(runner.endpoint, topics=["alert.cam", "event."])
    wait_subscribed(runner, 2)
    started = Started(runner)
    received = receive_until(reader, lambda m: m.get("event") == "stop")
    report = started.finish()
    published = report.frames["cam"]
    assert [m["seq"] for m in frames_of(received)] == list(range(published)) and reader.gaps == []
    assert published + report.drops["cam"] == 60
    stalled_frames = [m for m in read_all(stalled) if m["type"] == "frame"]
    assert len(stalled_frames) < published        # ZeroMQ dropped the stalled subscriber's copies
    stalled.close()
    reader.close()


def test_live_streams_share_one_model_and_keep_their_own_sequences(bundle, short_clip, demo_frames, make_clip,
                                                                    tmp_path):
    other = make_clip(tmp_path / "other.mp4", [frame[:96, :128] for frame in demo_frames[:40]])
    runner = Runner(bundle, [StreamSpec("a", str(short_clip)), StreamSpec("b", str(other))],
                    RunOptions(live=True, endpoint="tcp://127.0.0.1:*"))
    subscriber = AlertSubscriber(runner.endpoint, topics=["alert.", "event."])
    wait_subscribed(runner)
    report = Started(runner).finish()
    received = []
    while (message := subscriber.receive(timeout_s=0.5)) is not None:
        received.append(message)
    subscriber.close()
    for name, total in (("a", 60), ("b", 40)):
        seqs = [m["seq"] for m in frames_of(received) if m["stream"] == name]
        assert seqs == list(range(report.frames[name])) and report.frames[name] + report.drops[name] == total
        stops = [m for m in received if m.get("event") == "stop" and m["stream"] == name]
        assert len(stops) == 1 and stops[0]["reason"] == "end of stream"
    assert subscriber.gaps == [] and report.errors == []


def test_live_late_subscriber_joins_at_the_current_sequence(bundle, short_clip):
    runner = Runner(bundle, [StreamSpec("cam", str(short_clip))],
                    RunOptions(live=True, endpoint="tcp://127.0.0.1:*"))
    early = AlertSubscriber(runner.endpoint, topics=["alert."])
    wait_subscribed(runner)
    started = Started(runner)
    receive_until(early, lambda m: m["seq"] >= 15)
    late = AlertSubscriber(runner.endpoint, topics=["alert.", "heartbeat"])
    received = receive_until(late, lambda m: m["type"] == "frame")
    heartbeats = [m for m in received if m["type"] == "heartbeat"]
    assert received[-1]["seq"] >= 15
    assert all(h["streams"]["cam"]["last_seq"] >= 14 for h in heartbeats)
    report = started.finish()
    rest = []
    while (message := late.receive(timeout_s=0.5)) is not None:
        rest.append(message)
    assert frames_of(rest)[-1]["seq"] == report.frames["cam"] - 1 and late.gaps == []
    early.close()
    late.close()


def test_live_network_stream_reconnects_and_keeps_publishing(bundle, short_clip):
    url = f"tcp://127.0.0.1:{free_port()}"
    quick = stream_settings(reconnect_initial_s=0.1, reconnect_max_s=0.5, read_timeout_s=2.0)
    runner = Runner(bundle, [StreamSpec("net", url)], RunOptions(live=True, endpoint="tcp://127.0.0.1:*"), quick)
    subscriber = AlertSubscriber(runner.endpoint, topics=["alert.", "event."])
    wait_subscribed(runner)
    started = Started(runner)                     # no server yet: the monitor keeps trying
    server = serve_ts(url, short_clip, frames=40)
    try:
        received = receive_until(subscriber, lambda m: m.get("event") == "reconnecting"
                                 and "ended" in m["reason"])          # served 40 frames, then closed
        served_first = len(frames_of(received))
        assert served_first > 0
        server.wait(30)
        server = serve_ts(url, short_clip, frames=40)                 # the stream comes back
        received += receive_until(subscriber, lambda m: m.get("seq", -1) >= served_first + 10)
    finally:
        runner.stop()
        server.kill()
        server.wait()
    report = started.finish()
    frames = frames_of(received)
    assert [m["seq"] for m in frames] == list(range(len(frames))) and subscriber.gaps == []
    starts = [i for i, m in enumerate(received) if m.get("event") == "start"]
    assert len(starts) == 2 and frames[served_first]["frame"] < frames[served_first - 1]["frame"] + 40
    assert report.errors == [] and report.frames["net"] >= served_first + 11
    subscriber.close()
