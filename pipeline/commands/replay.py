"""Replay a recorded video through the monitor: every frame scored and published, in order, nothing dropped.

Publishes one message per frame on ZeroMQ (topic alert.<stream>), events on event.<stream> and a heartbeat
every second; --jsonl keeps the same frame and event objects as an audit file. Runs as fast as the machine
allows unless --realtime. A subscriber that lags slows the replay down instead of losing messages; with
--wait-subscribers N the first frame waits until N subscriptions have arrived. Ends with a summary: frames,
alerts, throughput and latency percentiles.

example:
  nero subscribe tcp://127.0.0.1:5556 &
  nero replay scripts/demo/clip.mp4 --wait-subscribers 1 --jsonl audit.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.bundle import load_bundle
from pipeline.config import load_config
from pipeline.runner import Runner, RunOptions, StreamSpec, add_run_arguments, execute
from stages.source import open_source, stream_name

HELP = "replay a video file or stream, losslessly, publishing a message per frame"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="video file (MP4, MKV, AVI, TS...) or stream URL")
    add_run_arguments(parser)
    parser.add_argument("--name", help="stream name in topics and messages (default: the file name)")
    parser.add_argument("--annotate", type=Path, metavar="OUT.mp4",
                        help="write the video with score, threshold and alert state drawn on each frame")
    parser.add_argument("--realtime", action="store_true", help="pace frames to their timestamps")
    parser.add_argument("--wait-subscribers", type=int, default=0, metavar="N",
                        help="hold the first frame until N subscriptions have arrived")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    name = args.name or stream_name(args.source)
    # Opened before the model loads, so a bad path or URL fails at once.
    opened = open_source(args.source, name, config.stream.hwaccel, config.stream.read_timeout_s)
    runner = Runner(load_bundle(config), [StreamSpec(name, args.source, opened)], RunOptions(
        endpoint=args.publish, jsonl=args.jsonl, annotate=args.annotate, realtime=args.realtime,
        wait_subscribers=args.wait_subscribers, progress=True))
    runner.options.log(f"replaying {args.source} as stream '{name}', publishing on {runner.endpoint}")
    return execute(runner, args.metrics_json)
