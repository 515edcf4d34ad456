"""The driver of `nero archive`: skip what is complete, run the rest, keep the index true after every recording.

The index (OUT/index.csv and OUT/index.jsonl, one row per recording of the manifest, in its order) is
rewritten whole after each recording finishes, under a temporary name and renamed, so it is never half a
file and an interrupted run leaves an index of what it had done. Status: `done` (replayed in this run),
`skipped` (complete from an earlier run: its row comes from its summary), `error` (could not be opened or
broke mid-way; the message is in `error`), `pending` (not reached yet).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.archive.plan import Recording, partial
from pipeline.media.video import SourceError, video_info

log = logging.getLogger(__name__)

COLUMNS = ("recording", "name", "status", "frames", "alerts", "seconds", "fps", "false_alarms", "missed",
           "mean_delay_s", "error", "audit", "worker")


def previous_row(recording: Recording, out: Path) -> dict[str, Any]:
    row = json.loads(recording.summary(out).read_text())
    return {**{key: row.get(key) for key in COLUMNS}, "status": "skipped"}


def write_index(out: Path, rows: list[dict[str, Any]]) -> None:
    table = io.StringIO()
    writer = csv.DictWriter(table, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    for path, text in ((out / "index.csv", table.getvalue()),
                       (out / "index.jsonl", "".join(json.dumps({k: r.get(k) for k in COLUMNS}) + "\n"
                                                    for r in rows))):
        partial(path).write_text(text)
        partial(path).rename(path)


def frame_count(recording: Recording) -> int:
    try:
        return int(video_info(recording.path).get("frames") or 0)
    except (SourceError, OSError):
        return 0


def run_archive(recordings: list[Recording], out: Path,
                execute: Callable[[list[Recording]], Iterator[dict[str, Any]]],
                progress: bool = True) -> list[dict[str, Any]]:
    """Every recording's row, after running `execute` on those not complete in OUT."""
    out.mkdir(parents=True, exist_ok=True)
    rows = {r.name: previous_row(r, out) if r.complete(out) else {"recording": str(r.path), "name": r.name,
                                                                   "status": "pending"} for r in recordings}
    todo = [r for r in recordings if rows[r.name]["status"] == "pending"]
    if len(todo) < len(recordings):
        log.info("%d of %d recordings are complete from an earlier run: skipped", len(recordings) - len(todo),
                 len(recordings))

    def ordered() -> list[dict[str, Any]]:   # the index in the manifest's order
        return [rows[r.name] for r in recordings]

    write_index(out, ordered())
    frames = sum(map(frame_count, todo))
    bars = tqdm(total=len(todo), unit="recording", position=0, disable=None if progress else True), \
        tqdm(total=frames or None, unit="frame", position=1, disable=None if progress else True)
    try:
        for row in execute(todo):
            rows[row["name"]] = row
            write_index(out, ordered())
            bars[0].update()
            bars[1].update(row.get("frames") or 0)
            if row["status"] == "error":
                log.warning("%s: %s", row["recording"], row["error"])
    finally:
        for bar in bars:
            bar.close()
    return ordered()
