"""Measure the monitor's throughput against its ceilings on one clip, side by side, in one run.

Paths measured (see pipeline/bench.py): decode only, model forward, score stage (forward + NERO),
a naive single-thread loop, and the monitor itself (`nero replay` with publishing and audit). Each is run
--rounds times, alternating, and reported as the median frames per second and as the monitor's ratio to it.

example:
  nero bench --frames 500 --json bench.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.bench import format_bench, run_bench
from pipeline.bundle import load_bundle
from pipeline.config import REPO_ROOT, load_config

HELP = "measure throughput: monitor vs decode-only, bare forward and a naive loop"
DEMO_CLIP = REPO_ROOT / "scripts" / "demo" / "clip.mp4"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?", type=Path, default=DEMO_CLIP,
                        help="video file (default: the bundled demo clip)")
    parser.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    parser.add_argument("--frames", type=int, default=500, help="frames from the start of the clip (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median counts (default 3)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures here")


def run(args: argparse.Namespace) -> int:
    bundle = load_bundle(load_config(args.config))
    result = run_bench(bundle, args.source, args.frames, args.rounds)
    print(format_bench(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
