"""Replay an archive of recordings: each one losslessly, to its own audit and summary, plus an index of all.

MANIFEST_OR_DIR is a folder (searched recursively for video files) or a text/CSV file with one recording per
line. For each recording OUT gets NAME.audit.jsonl (every message, as `nero replay --jsonl`) and
NAME.summary.json (frames, alerts, timings, errors; false alarms, misses and delays when a NAME.truth.csv
sidecar lies beside the video); OUT/index.csv and index.jsonl list every recording with its status.

Resumable and idempotent: a recording whose outputs are complete is skipped, outputs are written under a
.partial name and renamed when whole, and a recording that is corrupt or breaks is an error row that never
stops the others (exit status 2 at the end if there was one). --workers N runs N local processes, each with
one model; --ray runs Ray actors instead (the ray extra: pip install 'nero-monitor[ray]').

example:
  nero archive /data/procedures --out audits/ --workers 2
  nero archive manifest.csv --out /shared/audits --ray auto
"""

from __future__ import annotations

import argparse
import logging
import os
from functools import partial
from pathlib import Path

from pipeline.cli.console import emit
from pipeline.errors import UserError

log = logging.getLogger(__name__)

HELP = "replay many recordings (a folder or a manifest) to audits, summaries and an index; local or on Ray"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, metavar="MANIFEST_OR_DIR",
                        help="a folder of recordings, or a file listing one per line")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the audits and index go")
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: the bundled configs/default.yaml)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes, one model each (default 1; with --ray: actors, default the "
                             "cluster's CPUs / 2, or one per GPU)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run on Ray: local (a one-node cluster on this machine), auto (the cluster `ray "
                             "start` runs here) or a cluster address; OUT must be shared by every node")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pipeline.archive.plan import find_recordings
    from pipeline.config import load_config

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    recordings = find_recordings(args.source)
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file, not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    if not os.access(args.out, os.W_OK):
        raise UserError(f"cannot write into {args.out}: permission denied")
    config = load_config(args.config)

    from pipeline.archive.run import run_archive
    from pipeline.archive.workers import local_rows, ray_rows

    execute = partial(ray_rows, out=args.out, config=config, workers=args.workers, address=args.ray) if args.ray \
        else partial(local_rows, out=args.out, config=config, workers=args.workers or 1)
    where = f"Ray ({args.ray})" if args.ray else f"{args.workers or 1} local worker(s)"
    log.info("%d recordings from %s into %s, on %s", len(recordings), args.source, args.out, where)
    rows = run_archive(recordings, args.out, execute, args.progress)
    counts = {status: sum(row["status"] == status for row in rows) for status in ("done", "skipped", "error")}
    emit(f"{len(rows)} recordings: {counts['done']} replayed, {counts['skipped']} skipped (complete), "
         f"{counts['error']} failed; index: {args.out / 'index.csv'}")
    failed = [row for row in rows if row["status"] == "error"]
    if failed:
        raise UserError(f"{len(failed)} recording(s) failed, listed in {args.out / 'index.csv'}: "
                        + "; ".join(f"{Path(row['recording']).name}: {row['error']}" for row in failed[:3]))
    return 0
