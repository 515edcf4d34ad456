"""Two stop signals in a row, sent for real to a running monitor, 0.3 s apart: the second aborts at once with
exit 130 if the clean stop is still draining, or is noted if the run has already stopped (exit 0); never
SIGABRT (rc 134, as it used to) or a kill half-way, and the audit holds only whole lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_aborts_cleanly(stop_signal, demo_frames, make_clip, monitor_config_file, tmp_path):
    clip = make_clip(tmp_path / "camera.mp4", demo_frames * 10)     # 24 s at 25 fps: running when signalled
    audit = tmp_path / "audit.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "live", f"cam={clip}", "--config", str(monitor_config_file),
         "--publish", "tcp://127.0.0.1:*", "--jsonl", str(audit)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while not (audit.is_file() and audit.read_text().count('"type":"frame"') >= 10):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(stop_signal)
    time.sleep(0.3)
    process.send_signal(stop_signal)
    _, err = process.communicate(timeout=60)
    assert process.returncode in (0, 130), err
    assert ("aborting now" in err) == (process.returncode == 130)
    assert "Traceback" not in err and "terminate called" not in err
    text = audit.read_text()
    assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())


def test_sigterm_mid_replay_stops_with_a_whole_audit_and_a_stop_event(demo_frames, make_clip,
                                                                      monitor_config_file, tmp_path):
    """A replay is a record: stopped half-way, it says so (its stop event, exit 0 for a stop that was asked
    for) and its audit holds every frame it published, whole, in order."""
    clip = make_clip(tmp_path / "recording.mp4", demo_frames * 10)
    audit = tmp_path / "audit.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "replay", str(clip), "--config", str(monitor_config_file), "--realtime",
         "--publish", "tcp://127.0.0.1:*", "--jsonl", str(audit), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while not (audit.is_file() and audit.read_text().count('"type":"frame"') >= 10):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in err, err
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    frames = [record["seq"] for record in records if record["type"] == "frame"]
    assert 10 <= len(frames) < 600 and frames == list(range(len(frames)))
    assert records[-1]["event"] == "stop"


def test_sigusr1_prints_every_thread_and_the_command_carries_on(tmp_path):
    """An operator whose `nero` process does not stop, or stops publishing, asks it where it waits: SIGUSR1
    prints every thread's stack to stderr, and the command keeps running until it is stopped as usual.

    Started as a script's background job starts it, with SIGINT ignored: SIGINT still stops it (a suite run in
    the background had left the subscriber deaf to it)."""
    endpoint = "tcp://127.0.0.1:9"   # nothing publishes there: the subscriber waits in its receive loop
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "subscribe", endpoint, "--jsonl",
                                str(tmp_path / "received.jsonl")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 60
    while not (tmp_path / "received.jsonl").is_file():    # opened after the handler is in place
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGUSR1)
    time.sleep(1.0)
    assert process.poll() is None, "SIGUSR1 stopped the command"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode in (0, 130), err
    assert "most recent call first" in err and "subscribe.py" in err, err
