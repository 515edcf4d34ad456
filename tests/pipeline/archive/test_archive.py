"""`nero archive` on real recordings: two short clips (one with a truth sidecar) and one corrupt file, locally
with two worker processes and on a local Ray cluster (127.0.0.1)."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TIMES = ("t_capture", "t_publish", "t")          # when, not what: the only fields two runs may differ in
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def nero(*arguments: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, arguments)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def messages(audit: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMES} for line in audit.read_text().splitlines()]


def same(ours: object, theirs: object) -> bool:
    """Equal, floats within 1e-4 relative: batch sizes and thread counts change the last digits of a score."""
    if isinstance(ours, float) and isinstance(theirs, float):
        return abs(ours - theirs) <= 1e-4 * max(abs(ours), abs(theirs), 1e-2)
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(same(a, b) for a, b in zip(ours, theirs, strict=True))
    return ours == theirs


def index(out: Path) -> dict[str, dict]:
    with (out / "index.csv").open(newline="") as file:
        return {row["name"]: row for row in csv.DictReader(file)}


@pytest.fixture(scope="module")
def archive(tmp_path_factory, alert_clip) -> Path:
    """procedure.mp4 (8 s, with truth), sub/laparoscopic.mp4 (5 s), broken.mp4 (random bytes)."""
    folder = tmp_path_factory.mktemp("archive")
    shutil.copy(alert_clip, folder / "procedure.mp4")
    with (folder / "procedure.truth.csv").open("w") as truth:   # alert_clip: Kvasir 0-99, X-ray 100-174, Kvasir
        truth.write("frame,segment,ood\n" + "".join(
            f"{i},{'chest-xray' if 100 <= i < 175 else 'kvasir'},{int(100 <= i < 175)}\n" for i in range(200)))
    (folder / "sub").mkdir()
    shutil.copy(REPO / "tests" / "data" / "laparoscopic.mp4", folder / "sub" / "laparoscopic.mp4")
    # Fixed random bytes: os.urandom's were now and then probed as a container "with no video stream",
    # another (also reported) error than the one asserted
    (folder / "broken.mp4").write_bytes(random.Random(0).randbytes(100_000))
    return folder


@pytest.fixture(scope="module")
def replayed(archive, monitor_config_file, tmp_path_factory) -> dict[str, list[dict]]:
    """What `nero replay --jsonl` writes for each good recording."""
    out = tmp_path_factory.mktemp("replayed")
    audits = {}
    for name, video in (("procedure", archive / "procedure.mp4"), ("sub__laparoscopic", archive / "sub" /
                                                                   "laparoscopic.mp4")):
        done = nero("replay", video, "--config", monitor_config_file, "--publish", "tcp://127.0.0.1:*", "--jsonl",
                    out / f"{name}.jsonl", "--no-progress")
        assert done.returncode == 0, done.stderr
        audits[name] = messages(out / f"{name}.jsonl")
    return audits


def check_outputs(out: Path, replayed: dict[str, list[dict]]) -> None:
    rows = index(out)
    assert [rows[name]["status"] for name in ("broken", "procedure", "sub__laparoscopic")] == ["error", "done", "done"]
    assert "cannot open" in rows["broken"]["error"] and not (out / "broken.audit.jsonl").exists()
    for name, expected in replayed.items():
        ours = messages(out / f"{name}.audit.jsonl")
        assert len(ours) == len(expected) and same(ours, expected)      # the same messages as nero replay's
        summary = json.loads((out / f"{name}.summary.json").read_text())
        assert summary["frames"] == int(rows[name]["frames"]) == sum(m["type"] == "frame" for m in expected)
    procedure = json.loads((out / "procedure.summary.json").read_text())
    assert procedure["false_alarms"] == 0 and procedure["missed"] == 0 and procedure["mean_delay_s"] < 0.5
    assert list(out.glob("*.partial")) == []
    assert [json.loads(line)["name"] for line in (out / "index.jsonl").read_text().splitlines()] == \
        ["broken", "procedure", "sub__laparoscopic"]


def test_two_local_workers_then_a_rerun_that_skips_what_is_complete(archive, replayed, monitor_config_file,
                                                                     tmp_path):
    out = tmp_path / "out"
    first = nero("archive", archive, "--out", out, "--config", monitor_config_file, "--workers", 2, "--no-progress")
    assert first.returncode == 2 and "1 recording(s) failed" in first.stderr and "Traceback" not in first.stderr
    assert "3 recordings: 2 replayed, 0 skipped (complete), 1 failed" in first.stdout
    check_outputs(out, replayed)
    written = {path.name: path.stat().st_mtime_ns for path in out.glob("*.audit.jsonl")}

    again = nero("archive", archive, "--out", out, "--config", monitor_config_file, "--no-progress")
    assert "3 recordings: 0 replayed, 2 skipped (complete), 1 failed" in again.stdout, again.stderr
    assert [index(out)[name]["status"] for name in ("procedure", "sub__laparoscopic")] == ["skipped", "skipped"]
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("*.audit.jsonl")} == written   # untouched


def test_a_run_killed_mid_recording_is_finished_by_the_next(archive, replayed, monitor_config_file, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "archive", archive, "--out", out, "--config",
                                monitor_config_file, "--no-progress"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size > 0 for p in out.glob("*.audit.jsonl.partial")):   # mid-way through one
        assert process.poll() is None and time.monotonic() < deadline, "no recording was under way"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert list(out.glob("*.partial")) != []       # what it was writing is marked as not whole
    rerun = nero("archive", archive, "--out", out, "--config", monitor_config_file, "--no-progress")
    assert rerun.returncode == 2, rerun.stderr       # the broken recording, still
    check_outputs(out, replayed)


def test_on_a_local_ray_cluster(archive, replayed, monitor_config_file, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    done = nero("archive", archive, "--out", out, "--config", monitor_config_file, "--ray", "local",
                "--no-progress", timeout=600)
    assert done.returncode == 2 and "on Ray (local)" in done.stderr and "Ray: " in done.stderr, done.stderr
    check_outputs(out, replayed)


def test_a_missing_source_and_a_bad_worker_count_are_one_line(tmp_path):
    done = nero("archive", tmp_path / "nowhere", "--out", tmp_path / "out")
    assert done.returncode == 2 and "no such manifest or folder" in done.stderr
    (tmp_path / "empty").mkdir()
    assert "no video files" in nero("archive", tmp_path / "empty", "--out", tmp_path / "out").stderr
    assert "--workers must be >= 1" in nero("archive", tmp_path, "--out", tmp_path / "o", "--workers", 0).stderr
