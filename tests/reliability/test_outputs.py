"""Faults at the outputs, caused for real: a disk that fills up under the audit file, an audit that exists,
folders that do not, a port out of range. What a user must see: live alerts go on, a replay stops with one
line, the audit holds only whole lines, nothing produced before is lost, and bad paths fail before the run.

The full disk is the operating system's own refusal: the monitor runs in a child process whose file-size
limit (RLIMIT_FSIZE) stops the audit at 20 kB, mid-line, exactly as ENOSPC does on a full disk (EFBIG here;
both are the OSError the audit stage handles), without needing root to mount a small filesystem.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[2]
LIMIT = 20_000


def limited_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # refuse the write (EFBIG) instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def run_limited(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *arguments], capture_output=True, text=True,
                          timeout=300, preexec_fn=limited_file_size, env={**os.environ, "PYTHONPATH": str(REPO)})


def whole_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n"), "the audit ends in a line fragment"
    return [json.loads(line) for line in text.splitlines()]


def test_a_full_disk_stops_the_live_audit_not_the_alerts(short_clip, monitor_config_file, tmp_path):
    audit, metrics = tmp_path / "live.jsonl", tmp_path / "metrics.json"
    done = run_limited("live", f"cam={short_clip}", "--config", str(monitor_config_file), "--publish",
                       "tcp://127.0.0.1:*", "--jsonl", str(audit), "--metrics-json", str(metrics))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "live alerts go on without an audit" in done.stderr
    assert "cannot write the audit file" in done.stderr.strip().splitlines()[-1]
    kept = whole_lines(audit)
    assert 0 < len(kept) < 60 and audit.stat().st_size <= LIMIT
    cam = json.loads(metrics.read_text())["streams"]["cam"]
    # scoring and publishing went on past the audit's end (live mode may drop frames on a busy machine)
    assert cam["frames"] + cam["drops"] == 60 and cam["frames"] > sum(m["type"] == "frame" for m in kept)


def test_a_full_disk_stops_a_replay_with_one_line_and_whole_lines(short_clip, monitor_config_file, tmp_path):
    audit = tmp_path / "replay.jsonl"
    done = run_limited("replay", str(short_clip), "--config", str(monitor_config_file), "--publish",
                       "tcp://127.0.0.1:*", "--jsonl", str(audit))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "cannot write the audit file" in done.stderr.strip().splitlines()[-1]
    kept = whole_lines(audit)
    frames = [m["seq"] for m in kept if m["type"] == "frame"]
    assert frames == list(range(len(frames))) and 0 < len(frames) < 60   # complete up to the failure


def test_an_existing_audit_is_never_replaced_unasked(short_clip, monitor_config_file, tmp_path, capsys):
    audit = tmp_path / "audit.jsonl"
    audit.write_text('{"earlier": "run"}\n')
    base = ["replay", str(short_clip), "--config", str(monitor_config_file), "--publish", "tcp://127.0.0.1:*",
            "--jsonl", str(audit), "--no-progress"]
    assert main(base) == 2
    assert "exists: pass --overwrite to replace it or --append to add to it" in capsys.readouterr().err
    assert audit.read_text() == '{"earlier": "run"}\n'
    # a config error after the audit check: the earlier audit is still untouched
    bad = tmp_path / "bad.yaml"
    bad.write_text("stream:\n  max_batch: 0\n")
    assert main([*base[:2], "--config", str(bad), *base[4:], "--overwrite"]) == 2
    assert "'stream.max_batch' must be >= 1" in capsys.readouterr().err
    assert audit.read_text() == '{"earlier": "run"}\n'
    assert main([*base, "--append"]) == 0
    lines = audit.read_text().splitlines()
    assert lines[0] == '{"earlier": "run"}' and json.loads(lines[1])["event"] == "start"
    assert main([*base, "--overwrite"]) == 0
    assert json.loads(audit.read_text().splitlines()[0])["event"] == "start"


@pytest.mark.parametrize("flag", ["--metrics-json", "--annotate", "--jsonl"])
def test_output_paths_are_checked_before_the_run(flag, short_clip, monitor_config_file, tmp_path, capsys):
    target = tmp_path / "nodir" / "out.file"
    assert main(["replay", str(short_clip), "--config", str(monitor_config_file), "--publish",
                 "tcp://127.0.0.1:*", flag, str(target)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {target}: no folder {target.parent}" in err and "Traceback" not in err
    assert not (tmp_path / "nodir").exists()


def test_an_unwritable_folder_is_refused_before_the_run(short_clip, monitor_config_file, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    assert main(["replay", str(short_clip), "--config", str(monitor_config_file), "--jsonl",
                 str(folder / "a.jsonl")]) == 2
    assert "permission denied" in capsys.readouterr().err


@pytest.mark.parametrize(("endpoint", "message"), [
    ("tcp://127.0.0.1:99999", "port '99999' is not a number from 1 to 65535"),
    ("tcp://127.0.0.1", "expected tcp://HOST:PORT"),
    ("udp://127.0.0.1:5556", "expected tcp://HOST:PORT"),
])
def test_a_bad_endpoint_is_refused_not_rebound(endpoint, message, short_clip, monitor_config_file, capsys):
    assert main(["replay", str(short_clip), "--config", str(monitor_config_file), "--publish", endpoint]) == 2
    assert message in capsys.readouterr().err


def test_an_absent_capture_device_is_refused(capsys):
    assert main(["live", "cam=v4l2:///dev/video57"]) == 2
    assert "no such capture device: /dev/video57" in capsys.readouterr().err


def test_a_truncated_recording_is_not_replayed_as_complete(demo_frames, monitor_config_file, tmp_path):
    """A 60-frame MP4 with its index at the front (as recorders write them to be streamable), cut at half."""
    import av

    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = demo_frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for index, rgb in enumerate(demo_frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    audit = tmp_path / "cut.jsonl"
    done = subprocess.run([sys.executable, "-m", "pipeline", "replay", str(cut), "--config", str(monitor_config_file),
                           "--publish", "tcp://127.0.0.1:*", "--jsonl", str(audit), "--no-progress"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "of the 60 frames its index lists: the file is truncated or damaged" in done.stderr
    kept = whole_lines(audit)
    assert 0 < sum(m["type"] == "frame" for m in kept) < 60 and kept[-1]["event"] == "stop"


def test_a_bad_image_costs_only_its_own_line(tmp_path, capsys):
    """A truncated JPEG and a file that is no image among good photos, in one batch of `nero score`."""
    photos = sorted((REPO / "tests" / "data" / "OOD" / "natural").glob("*.jpg"))
    folder = tmp_path / "images"
    folder.mkdir()
    for photo in photos[:4]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    (folder / "b_cut.jpg").write_bytes(photos[4].read_bytes()[:3000])
    (folder / "c_text.jpg").write_text("not an image")
    jsonl = tmp_path / "scores.jsonl"
    assert main(["score", str(folder), "--jsonl", str(jsonl)]) == 2
    err = capsys.readouterr().err
    assert "b_cut.jpg is truncated" in err and "c_text.jpg" in err
    assert "2 of 6 images could not be read" in err and "Traceback" not in err
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(Path(line["path"]).name for line in lines) == sorted(photo.name for photo in photos[:4])
