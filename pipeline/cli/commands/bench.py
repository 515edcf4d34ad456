"""Measure the monitor's throughput against its ceilings on one clip, side by side, in one run.

Paths measured (see pipeline/stream/bench.py): decode only, model forward, score stage (forward + NERO),
a naive single-thread loop, and the monitor itself (`nero replay` with publishing and audit). Each is run
--rounds times, alternating, and reported as the median frames per second, as the monitor's ratio to it,
and as CPU milliseconds a frame (all threads): with them, how much of the machine's cores the monitor kept
busy, i.e. whether it is bound by the CPU or waiting on something.

example:
  nero bench --frames 500 --json bench.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.console import emit
from pipeline.errors import UserError

HELP = "measure throughput: monitor vs decode-only, bare forward and a naive loop"
DEMO_CLIP = Path(__file__).resolve().parents[3] / "scripts" / "demo" / "clip.mp4"   # in a source checkout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?", type=Path, metavar="VIDEO",
                        help="video file (default: the demo clip of a source checkout, scripts/demo/clip.mp4)")
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: the bundled configs/default.yaml)")
    parser.add_argument("--frames", metavar="N", type=int, default=500,
                        help="frames from the start of the clip (default 500)")
    parser.add_argument("--rounds", metavar="N", type=int, default=3,
                        help="alternating rounds; the median counts (default 3)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures here (JSON)")
    parser.add_argument("--streams", type=int, default=1, metavar="N",
                        help="also run N copies of the clip through one monitor: aggregate frames/s and per-stream "
                             "latency (p50, p99, p99.9) and drops (default 1: not measured)")
    parser.add_argument("--realtime", action="store_true",
                        help="with --streams: each copy at the clip's own rate (live, drops counted) instead of "
                             "as fast as possible")


def run(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.model.bundle import load_bundle
    from pipeline.stream.bench import format_bench, run_bench
    from pipeline.stream.runner import RunSettings

    source = args.source or DEMO_CLIP
    if not source.is_file():
        raise UserError(f"no such video file: {source}" + ("" if args.source else " (pass a VIDEO to measure)"))
    if args.streams < 1:
        raise UserError(f"--streams must be >= 1, got {args.streams}")
    if args.realtime and args.streams == 1:
        raise UserError("--realtime applies to --streams N (N > 1)")
    config = load_config(args.config)
    result = run_bench(load_bundle(config), source, args.frames, args.rounds, RunSettings.of(config),
                       streams=args.streams, realtime=args.realtime)
    emit(format_bench(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
