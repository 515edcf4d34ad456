"""Inputs that change under the monitor, caused for real: a recording whose resolution changes half-way (two
H.264 streams of different sizes, one after the other in one MPEG-TS file, as a capture card renegotiating
its mode produces)."""

from __future__ import annotations

import json

import numpy as np

from pipeline.cli import main


def test_a_resolution_change_mid_recording_is_replayed_whole(demo_frames, make_clip, monitor_config_file,
                                                             tmp_path):
    small = make_clip(tmp_path / "a.ts", demo_frames[:30])
    large = make_clip(tmp_path / "b.ts", [np.kron(frame, np.ones((2, 2, 1), np.uint8)) for frame in demo_frames[30:]])
    recording = tmp_path / "changing.ts"
    recording.write_bytes(small.read_bytes() + large.read_bytes())
    audit = tmp_path / "audit.jsonl"
    assert main(["replay", str(recording), "--config", str(monitor_config_file), "--publish", "tcp://127.0.0.1:*",
                 "--jsonl", str(audit), "--no-progress"]) == 0
    frames = [json.loads(line) for line in audit.read_text().splitlines() if '"type":"frame"' in line]
    assert [frame["seq"] for frame in frames] == list(range(60))        # every frame of both sizes, once
    assert all(frame["score"] is not None for frame in frames)
