"""Which recordings an archive run covers, and where each one's outputs go.

A MANIFEST is a text or CSV file with one recording per line (the first column; lines starting with # and a
header named `path` are skipped; relative paths are relative to the manifest); a DIR is searched recursively
for video files. Each recording's outputs are named after its path relative to the manifest's or the
folder's root, with `/` turned into `__`, so two recordings with the same file name in different folders
never collide:

    OUT/<name>.audit.jsonl     every frame and event message, as `nero replay --jsonl` writes it
    OUT/<name>.summary.json    frames, alerts, timings, errors, and against a truth sidecar false alarms,
                               delays and misses

Both are written under a `.partial` name and renamed when whole (the audit first, the summary last), so a
recording is complete exactly when its summary exists: an interrupted run leaves only `.partial` files,
which the next run replaces.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".ts", ".m4v", ".webm", ".mpg", ".mpeg"})
PARTIAL = ".partial"


@dataclass(frozen=True)
class Recording:
    path: Path          # the video
    name: str           # its outputs' stem (unique within the run)

    def audit(self, out: Path) -> Path:
        return out / f"{self.name}.audit.jsonl"

    def summary(self, out: Path) -> Path:
        return out / f"{self.name}.summary.json"

    def complete(self, out: Path) -> bool:
        return self.summary(out).is_file() and self.audit(out).is_file()


def partial(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL)


def output_name(path: Path, root: Path) -> str:
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        relative = Path(path.name)
    return "__".join(relative.with_suffix("").parts)


def find_recordings(source: Path) -> list[Recording]:
    """The recordings of a manifest file or a folder, in a stable order."""
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        root = source
        if not paths:
            raise UserError(f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) under {source}")
    elif source.is_file():
        root = source.parent
        with source.open(newline="") as file:
            rows = [row for row in csv.reader(file) if row and row[0].strip() and not row[0].startswith("#")]
        if rows and rows[0][0].strip().lower() == "path":
            rows = rows[1:]
        paths = [(root / row[0].strip()) for row in rows]
        if not paths:
            raise UserError(f"the manifest {source} lists no recordings (one path per line)")
    else:
        raise UserError(f"no such manifest or folder: {source}")
    recordings = [Recording(path, output_name(path, root)) for path in paths]
    names = [r.name for r in recordings]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise UserError(f"the manifest lists the same recording twice: {', '.join(twice)}")
    return recordings
