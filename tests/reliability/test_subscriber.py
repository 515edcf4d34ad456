"""The subscriber as an operator needs it, with real processes on 127.0.0.1: a monitor killed and started
again, a monitor that falls silent, an endpoint whose host does not exist."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.client import AlertSubscriber
from pipeline.errors import UserError

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def live(clip: Path, config: Path, endpoint: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "live", f"cam={clip}", "--config", str(config),
                             "--publish", endpoint], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)


def receive_frames(subscriber: AlertSubscriber, count: int, deadline_s: float = 120.0) -> None:
    deadline, frames = time.monotonic() + deadline_s, 0
    while frames < count:
        assert time.monotonic() < deadline, "no frames from the monitor"
        message = subscriber.receive(timeout_s=1.0)
        frames += message is not None and message["type"] == "frame"


def test_a_killed_and_restarted_monitor_is_reported(flood_check, demo_frames, make_clip, monitor_config_file, tmp_path):
    clip = make_clip(tmp_path / "camera.mp4", demo_frames * 10)      # 24 s: still running when killed
    endpoint = flood_check.free_endpoint()
    restarted: list[str] = []
    with AlertSubscriber(endpoint, on_restart=restarted.append) as subscriber:
        for frames in (20, 5):                      # the first run, then the same monitor started again
            monitor = live(clip, monitor_config_file, endpoint)
            try:
                receive_frames(subscriber, frames)
            finally:
                monitor.send_signal(signal.SIGKILL)
                monitor.wait()
    assert restarted == ["cam"] and subscriber.gaps == []     # a restart, not a gap of "negative" size


def test_nero_subscribe_says_when_the_monitor_falls_silent(flood_check, demo_frames, make_clip, monitor_config_file,
                                                           tmp_path):
    clip = make_clip(tmp_path / "camera.mp4", demo_frames * 10)
    endpoint, received = flood_check.free_endpoint(), tmp_path / "received.jsonl"
    subscriber = subprocess.Popen([sys.executable, "-m", "pipeline", "subscribe", endpoint, "--silence", "1.5",
                                   "--timeout", "4", "--jsonl", str(received)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    monitor = live(clip, monitor_config_file, endpoint)
    try:
        deadline = time.monotonic() + 120
        while not (received.is_file() and received.read_text().count("\n") >= 10):
            assert time.monotonic() < deadline and monitor.poll() is None, "the monitor published nothing"
            time.sleep(0.2)
    finally:
        monitor.send_signal(signal.SIGKILL)          # no stop event: silence is all the subscriber gets
        monitor.wait()
    out, err = subscriber.communicate(timeout=60)
    assert subscriber.returncode == 0 and "received " in err, (out, err)
    assert "monitor silent: nothing from" in err and "not even a heartbeat" in err


def test_silence_after_every_stream_stopped_is_no_warning(flood_check, short_clip, monitor_config_file, tmp_path):
    """A replay that ends sends its stop event and then nothing: the monitor finished, it did not fail, so the
    operator is not warned (the demo used to print "monitor silent" while the replay wrote its report)."""
    endpoint = flood_check.free_endpoint()
    subscriber = subprocess.Popen([sys.executable, "-m", "pipeline", "subscribe", endpoint, "--silence", "1.5",
                                   "--timeout", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=ENV)
    replay = subprocess.run([sys.executable, "-m", "pipeline", "replay", str(short_clip), "--config",
                             str(monitor_config_file), "--publish", endpoint, "--wait-subscribers", "1",
                             "--no-progress"], capture_output=True, text=True, env=ENV, timeout=300)
    assert replay.returncode == 0, replay.stderr
    out, err = subscriber.communicate(timeout=60)
    assert subscriber.returncode == 0 and "stop (end of stream)" in out, (out, err)
    assert "every stream has stopped" in err and "monitor silent" not in err, err


def test_an_endpoint_whose_host_does_not_exist_is_one_line(capsys):
    with pytest.raises(UserError, match="no host named 'nohost.invalid'"):
        AlertSubscriber("tcp://nohost.invalid:5556")
    assert main(["subscribe", "tcp://nohost.invalid:5556", "--timeout", "2"]) == 2
    assert "cannot reach tcp://nohost.invalid:5556" in capsys.readouterr().err
