"""`nero live` as a service manager runs it: SIGINT or SIGTERM stops it cleanly, exit 0, audit complete."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_signal_drains_flushes_and_exits_0(stop_signal, demo_frames, make_clip, monitor_config_file,
                                          tmp_path):
    clip = make_clip(tmp_path / "camera.mp4", demo_frames * 5)   # 12 s at 25 fps: running when signalled
    audit = tmp_path / "audit.jsonl"
    config = yaml.safe_load(monitor_config_file.read_text()) | {"stream": {"report_every_s": 0.5}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "live", f"cam={clip}", "--config", str(tmp_path / "config.yaml"),
         "--publish", "tcp://127.0.0.1:*", "--jsonl", str(audit)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    # 25 frames: a second at 25 fps, so the periodic metrics line (every 0.5 s) has been printed
    while not (audit.is_file() and audit.read_text().count('"type":"frame"') >= 25):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no frames published"
        time.sleep(0.1)
    process.send_signal(stop_signal)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in audit.read_text().splitlines()]    # every line complete and valid
    frames = [m for m in lines if m["type"] == "frame"]
    assert [m["seq"] for m in frames] == list(range(len(frames))) and len(frames) < 300
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "stop" and lines[-1]["reason"] == "stopped"
    assert f"cam: {len(frames)} frames" in out and "end_to_end" in out
    assert "stopping after the frames in flight" in err and "Traceback" not in err
    assert "[live] " in err and " fps, end-to-end p50 " in err       # the periodic metrics line


def test_explain_flag_starts_the_heatmap_worker_and_reports_it(short_clip, monitor_config_file, tmp_path):
    """`--explain` reaches the runner: the summary and --metrics-json carry the worker's counts (the heatmaps
    themselves: tests/pipeline/test_runner_explain.py)."""
    metrics = tmp_path / "metrics.json"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "live", f"cam={short_clip}", "--config", str(monitor_config_file),
         "--publish", "tcp://127.0.0.1:*", "--explain", "--metrics-json", str(metrics)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "heatmaps on explain.<stream>" in done.stderr and "heatmaps: " in done.stdout
    stats = json.loads(metrics.read_text())["explain"]
    assert set(stats) == {"submitted", "dropped", "done", "failed", "last_error"} and stats["failed"] == 0


def test_a_metrics_port_in_use_is_refused_before_the_model_loads(short_clip, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "live", f"cam={short_clip}", "--metrics-port",
             str(taken.getsockname()[1]), "--config", str(tmp_path / "never-read.yaml")],
            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    # the port is checked before the config is even read, let alone the model loaded
    assert done.returncode == 2 and "--metrics-port" in done.stderr and "cannot serve" in done.stderr, done.stderr


def test_a_source_faster_than_the_model_is_said_on_stderr_and_as_an_event(demo_frames, make_clip,
                                                                         monitor_config_file, tmp_path):
    """A 250 fps camera: no 2-core machine scores that, so the monitor drops frames and must say so."""
    clip = make_clip(tmp_path / "fast.mp4", demo_frames * 12, fps=250)        # 720 frames, 2.9 s
    config = yaml.safe_load(monitor_config_file.read_text()) | {"stream": {"realtime_check_s": 0.5}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    audit = tmp_path / "audit.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "live", f"cam={clip}", "--config", str(tmp_path / "config.yaml"),
         "--publish", "tcp://127.0.0.1:*", "--jsonl", str(audit)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "real time lost" in done.stderr and "likely cause" in done.stderr
    events = [m for m in map(json.loads, audit.read_text().splitlines()) if m.get("event") == "realtime"]
    assert events and events[0]["kept"] is False and events[0]["source_fps"] == 250
    assert events[0]["fps"] < 0.95 * 250
