"""Per-segment summary of a replay against the clip's ground truth: how often each part was flagged, how soon
each OOD segment was alerted, and the false alarms on in-distribution video.

    python scripts/segment_summary.py demo-output/audit.jsonl scripts/demo/clip.truth.csv

`ood` is the raw per-frame decision (score over the threshold, or unusable input); `alert` the smoothed one a
display shows. Delay, false alarm and miss are defined once, in pipeline/ood/truth.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.errors import UserError  # noqa: E402
from pipeline.ood.truth import AlertOutcome, Truth  # noqa: E402


def frame_records(audit: Path) -> list[dict]:
    records = [json.loads(line) for line in audit.open() if line.strip()]
    return sorted((r for r in records if r.get("type") == "frame"), key=lambda record: record["frame"])


def summary_lines(records: list[dict], truth: Truth, fps: float) -> list[str]:
    """The table by segment name, one line per OOD segment, and the false-alarm line."""
    seen = truth.at([record["frame"] for record in records])
    frames, ood, alert = Counter(seen.segments), Counter(), Counter()
    for name, record in zip(seen.segments, records, strict=True):
        ood[name] += bool(record["ood"])
        alert[name] += bool(record["alert"])
    lines = [f"{'segment':14s} {'frames':>7s} {'flagged (ood)':>14s} {'alert on':>9s}"]
    lines += [f"{name:14s} {frames[name]:7d} {ood[name] / frames[name]:13.0%} {alert[name] / frames[name]:9.0%}"
              for name in frames]
    outcome = AlertOutcome.of(np.array([bool(record["alert"]) for record in records]), seen, fps)
    times = [record["pts"] for record in records]
    lines.append("")
    for part in outcome.segments:
        when = "MISSED" if part.delay_s is None else f"alert after {part.delay_s:.2f} s"
        lines.append(f"{part.name:14s} {times[part.start]:6.1f}-{times[part.end - 1] + 1 / fps:5.1f} s: {when}")
    where = ", ".join(f"{times[i]:.1f} s" for i in outcome.false_alarms)
    lines.append(f"false alarms on in-distribution video: {len(outcome.false_alarms)} in {outcome.id_minutes:.2f} "
                 f"min ({outcome.false_alarms_per_min:.2f} per minute)" + (f", at {where}" if where else ""))
    if outcome.carried:
        lines.append(f"({outcome.carried} in-distribution frames kept an alert raised on an OOD segment: its "
                     "off-delay after the segment ended, not a false alarm)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("audit", type=Path, help="the replay's JSONL audit file")
    parser.add_argument("truth", type=Path, help="the clip's truth CSV (columns frame, segment, ood)")
    parser.add_argument("--fps", type=float, help="frame rate of the clip (default: from the frames' pts)")
    args = parser.parse_args(argv)
    try:
        for path in (args.audit, args.truth):
            if not path.is_file():
                raise UserError(f"no such file: {path}")
        records = frame_records(args.audit)
        if not records:
            raise UserError(f"{args.audit} holds no frame messages")
        span = records[-1]["pts"] - records[0]["pts"]
        fps = args.fps or ((records[-1]["frame"] - records[0]["frame"]) / span if span > 0 else 25.0)
        print("\n".join(summary_lines(records, Truth.read(args.truth), fps)))
    except UserError as error:
        print(f"segment_summary: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
