"""Per-segment summary of a replay against the clip's ground truth: how often each segment was flagged.

    python scripts/segment_summary.py demo-output/audit.jsonl scripts/demo/clip.truth.csv

`ood` is the raw per-frame decision (score > threshold); `alert` the smoothed one a display shows.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path


def summarise(audit: Path, truth: Path) -> list[tuple[str, int, int, int]]:
    """(segment, frames, ood frames, alert frames) in the order segments first appear."""
    segment_of = {int(row["frame"]): row["segment"] for row in csv.DictReader(truth.open())}
    frames, ood, alert = Counter(), Counter(), Counter()
    for line in audit.open():
        record = json.loads(line)
        if record.get("type") != "frame":
            continue
        segment = segment_of.get(record["frame"], "?")
        frames[segment] += 1
        ood[segment] += bool(record["ood"])
        alert[segment] += bool(record["alert"])
    return [(name, frames[name], ood[name], alert[name]) for name in frames]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("audit", type=Path, help="the replay's JSONL audit file")
    parser.add_argument("truth", type=Path, help="the clip's truth CSV (columns frame, segment)")
    args = parser.parse_args(argv)
    for path in (args.audit, args.truth):
        if not path.is_file():
            print(f"segment_summary: error: no such file: {path}", file=sys.stderr)
            return 2
    print(f"{'segment':14s} {'frames':>7s} {'flagged (ood)':>14s} {'alert on':>9s}")
    for name, count, ood, alert in summarise(args.audit, args.truth):
        print(f"{name:14s} {count:7d} {ood / count:13.0%} {alert / count:9.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
