"""A subscriber that lags, forced for real with small buffers on both sides (the monitor's high-water mark
and SO_SNDBUF, the subscriber's RCVHWM and SO_RCVBUF): loopback's default buffers otherwise absorb minutes
of lag, which is why none of this had ever been exercised.

- live: the slow subscriber is handed late messages marked stale, then loses messages (a gap in `seq`,
  reported), while a normal subscriber beside it loses nothing and the monitor keeps its pace;
- replay: the slow subscriber holds the replay back instead (backpressure) and loses nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipeline.client import AlertSubscriber

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
# Live: 25 messages (1 s of frames) and 4 kB, small enough that the slow subscriber overflows within seconds,
# while the normal one, whose ZeroMQ I/O thread may be starved for a moment on a loaded 2-core machine (a
# high-water mark of 5, 0.2 s, once was not enough in a full suite run), keeps a second of slack.
LIVE_HWM = 25
# Replay: 5 messages, so that the 60-frame clip cannot fit into the buffers and the replay must wait for the
# slow subscriber (at 25 the clip fitted once the model ran in OpenVINO, and the replay was done too soon).
REPLAY_HWM = 5
SEND_BUFFER_BYTES = 4096
READ_PAUSE_S = 0.25         # the slow subscriber reads 4 messages a second; frames come at 25


def small_buffers_config(base: Path, folder: Path, high_water_mark: int) -> Path:
    document = yaml.safe_load(base.read_text())
    document["publish"] = {"high_water_mark": high_water_mark, "send_buffer_bytes": SEND_BUFFER_BYTES}
    path = folder / "small-buffers.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def slow(endpoint: str, lags: list) -> AlertSubscriber:
    return AlertSubscriber(endpoint, topics=("alert.",), high_water_mark=5, receive_buffer_bytes=4096,
                           max_lag_s=1.0, on_lag=lambda stale, lag: lags.append((stale, lag)))


def test_a_lagging_live_subscriber_gets_stale_marks_and_gaps_not_the_others(flood_check, demo_frames, make_clip,
                                                                             monitor_config_file, tmp_path):
    clip = make_clip(tmp_path / "camera.mp4", demo_frames * 10)        # 24 s of camera
    config = small_buffers_config(monitor_config_file, tmp_path, LIVE_HWM)
    endpoint, lags = flood_check.free_endpoint(), []
    with AlertSubscriber(endpoint, topics=("alert.",)) as normal, slow(endpoint, lags) as laggard:
        monitor = subprocess.Popen([sys.executable, "-m", "pipeline", "live", f"cam={clip}", "--config",
                                    str(config), "--publish", endpoint], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=ENV)
        try:
            seen, deadline = 0, time.monotonic() + 180
            while not (laggard.gaps and any(stale for stale, _ in lags)):
                assert time.monotonic() < deadline and monitor.poll() is None, (laggard.gaps, lags)
                laggard.receive(timeout_s=0.5)
                time.sleep(READ_PAUSE_S)
                while (message := normal.receive(timeout_s=0)) is not None:      # keeps up
                    seen += message["type"] == "frame"
            while (message := normal.receive(timeout_s=0.5)) is not None:
                seen += message["type"] == "frame"
        finally:
            monitor.send_signal(signal.SIGINT)
            monitor.wait(60)
    assert laggard.missing > 0                       # the monitor dropped its messages rather than wait
    assert max(lag for stale, lag in lags if stale) > 1.0
    assert normal.gaps == [] and seen > 50           # the subscriber that keeps up lost nothing


def test_a_lagging_replay_subscriber_holds_the_replay_back_and_loses_nothing(flood_check, short_clip,
                                                                           monitor_config_file, tmp_path):
    config = small_buffers_config(monitor_config_file, tmp_path, REPLAY_HWM)
    endpoint, lags = flood_check.free_endpoint(), []
    with slow(endpoint, lags) as laggard:
        replay = subprocess.Popen([sys.executable, "-m", "pipeline", "replay", str(short_clip), "--config",
                                   str(config), "--publish", endpoint, "--wait-subscribers", "1",
                                   "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, env=ENV)
        frames, started, still_running_after = 0, None, 0
        while frames < 60:
            message = laggard.receive(timeout_s=60)
            assert message is not None, \
                f"exit {replay.returncode}: {replay.stderr.read()}" if replay.poll() is not None else "no frames"
            started = started or time.monotonic()
            frames += 1
            if frames == 20:
                still_running_after = replay.poll() is None
            time.sleep(0.05)
        assert replay.wait(60) == 0
    assert frames == 60 and laggard.gaps == []            # every frame, in order
    # After 20 of 60 frames read the replay had not finished: it was waiting on this subscriber (unthrottled,
    # the 60 frames are scored in about 2 s, and the buffers hold only a few messages).
    assert still_running_after
