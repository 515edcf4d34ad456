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
import logging
from pathlib import Path

from pipeline.cli.monitor import add_run_arguments, apply_flags, check_outputs, execute, publish_keys
from pipeline.errors import UserError

log = logging.getLogger(__name__)

HELP = "replay a video file or stream, losslessly, publishing a message per frame"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="video file (MP4, MKV, AVI, TS...) or stream URL")
    add_run_arguments(parser)
    parser.add_argument("--name", help="stream name in topics and messages (default: the file name)")
    parser.add_argument("--annotate", type=Path, metavar="FILE",
                        help="write an MP4 with score, threshold and alert state drawn on each frame")
    parser.add_argument("--realtime", action="store_true", help="pace frames to their timestamps")
    parser.add_argument("--wait-subscribers", type=int, default=0, metavar="N",
                        help="hold the first frame until N subscriptions have arrived")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar (default: one on a terminal), e.g. when a subscriber prints there")
    parser.add_argument("--report", type=Path, metavar="DIR",
                        help="after the run, write DIR/report.html: score timeline, alert intervals and a "
                             "heatmap of each interval's highest-scoring frame (files only)")


def run(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.media.video import source_kind, stream_name
    from pipeline.model.bundle import load_bundle
    from pipeline.stream.runner import Runner, RunOptions, RunSettings, StreamSpec, open_stream

    config = apply_flags(args, load_config(args.config))
    name = args.name or stream_name(args.source)
    if args.report and source_kind(args.source) != "file":
        raise UserError("--report needs a video file: it reads the frames of each alert again afterwards")
    audit = args.jsonl or (args.report / "audit.jsonl" if args.report else None)
    if args.report and not args.jsonl:
        args.report.mkdir(parents=True, exist_ok=True)
    check_outputs(args, audit, args.metrics_json, args.annotate)
    curve = publish_keys(args, config)
    # Opened before the model loads, so a bad path or URL fails at once.
    # (Before torch starts CUDA, too: NVDEC can then share torch's context the simple way, pipeline/media/video.py.)
    opened = open_stream(args.source, name, config.stream, config.torch_device())
    bundle = load_bundle(config)
    runner = Runner(bundle, [StreamSpec(name, args.source, opened)], RunOptions(
        endpoint=args.publish, jsonl=audit, append=args.append, annotate=args.annotate, realtime=args.realtime,
        wait_subscribers=args.wait_subscribers, progress=args.progress, curve=curve,
        metrics_port=args.metrics_port, hub=args.hub), RunSettings.of(config))
    log.info("replaying %s as stream '%s', publishing on %s", args.source, name, runner.endpoint)
    code = execute(runner, args.metrics_json)
    if args.report:
        from pipeline.explain.report import write_report  # matplotlib: only for --report

        # After the run: the heatmaps rewrite the classifier's rules while they run (pipeline/explain/heatmap.py).
        log.info("writing the report (a heatmap per alert interval) to %s", args.report)
        log.info("report: %s", write_report(audit, args.source, args.report, bundle, stream=name))
    return code
