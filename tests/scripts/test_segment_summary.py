"""scripts/segment_summary.py: per-segment shares of flagged and alerting frames."""

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("segment_summary", REPO / "scripts" / "segment_summary.py")
segment_summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(segment_summary)


def test_shares_per_segment(tmp_path, capsys):
    truth = tmp_path / "t.csv"
    truth.write_text("frame,segment\n0,kvasir\n1,kvasir\n2,capsule\n3,capsule\n")
    audit = tmp_path / "a.jsonl"
    records = [{"type": "event", "event": "start"}] + [
        {"type": "frame", "frame": i, "ood": i >= 2, "alert": i == 3} for i in range(4)]
    audit.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert segment_summary.summarise(audit, truth) == [("kvasir", 2, 0, 0), ("capsule", 2, 2, 1)]
    assert segment_summary.main([str(audit), str(truth)]) == 0
    assert "capsule              2          100%       50%" in capsys.readouterr().out


def test_missing_file_is_one_line(tmp_path, capsys):
    assert segment_summary.main([str(tmp_path / "a.jsonl"), str(tmp_path / "t.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
