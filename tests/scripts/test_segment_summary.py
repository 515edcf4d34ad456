"""scripts/segment_summary.py: per-segment shares, delay per OOD segment, false alarms per minute."""

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("segment_summary", REPO / "scripts" / "segment_summary.py")
segment_summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(segment_summary)


def test_shares_delays_and_false_alarms(tmp_path, capsys):
    truth = tmp_path / "t.csv"
    names = ["kvasir"] * 20 + ["capsule"] * 10 + ["kvasir"] * 20 + ["xray"] * 10
    truth.write_text("frame,segment,ood\n" + "".join(f"{i},{n},{int(n != 'kvasir')}\n" for i, n in enumerate(names)))
    alert = set(range(5, 8)) | set(range(22, 33))          # a false alarm at frame 5, capsule after 2 frames,
    #                                                        held 3 frames into the next kvasir stretch
    records = [{"type": "event", "event": "start"}] + [
        {"type": "frame", "frame": i, "pts": i / 10, "ood": i in alert, "alert": i in alert} for i in range(60)]
    audit = tmp_path / "a.jsonl"
    audit.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert segment_summary.main([str(audit), str(truth)]) == 0
    out = capsys.readouterr().out
    assert "capsule             10           80%       80%" in out
    assert "kvasir              40           15%       15%" in out
    assert "capsule           2.0-  3.0 s: alert after 0.20 s" in out
    assert "xray              5.0-  6.0 s: MISSED" in out
    assert "false alarms on in-distribution video: 1 in 0.07 min (15.00 per minute), at 0.5 s" in out
    assert "(3 in-distribution frames kept an alert raised on an OOD segment" in out


def test_missing_file_is_one_line(tmp_path, capsys):
    assert segment_summary.main([str(tmp_path / "a.jsonl"), str(tmp_path / "t.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
