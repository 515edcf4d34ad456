"""Monitor live video: one or more streams through one model, latency first.

SOURCE is a capture device (/dev/video0), a network stream (rtsp://, rtmp://, srt://, udp://, tcp://, http://)
or a file (played at its own frame rate, standing in for a camera); NAME=SOURCE names the stream (default: the
file name, device or host). When the model falls behind, the oldest waiting frames are dropped before
batching, and every drop is counted (heartbeats, periodic reports, summary). A stream that fails or ends is
reopened with exponential backoff. Ctrl-C (or SIGTERM) stops cleanly: queues drained, audit flushed,
socket closed.

--explain also publishes a heatmap (PNG) of each frame that turns a stream's alert on, on explain.<stream>,
computed in a separate process on one CPU core: per-frame alerts never wait for it, and an alert that finds
the worker busy gets no heatmap (counted in the summary).

example:
  nero live endo=rtsp://192.168.1.20:8554/scope /dev/video0 --jsonl audit.jsonl --explain
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.monitor import add_run_arguments, apply_flags, check_outputs, execute, publish_keys
from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.stream.runner import StreamSpec

log = logging.getLogger(__name__)

HELP = "monitor live streams (devices, network streams), dropping frames rather than falling behind"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="[NAME=]device, stream URL or file")
    add_run_arguments(parser)
    parser.add_argument("--explain", action="store_true",
                        help="publish a heatmap of each frame that turns an alert on, on explain.<stream> "
                             "([topic, JSON header with seq, PNG]); computed off the hot path, never "
                             "delaying alerts")


def stream_specs(sources: list[str]) -> list[StreamSpec]:
    """NAME=SOURCE or SOURCE (named after the file, device or host) -> specs with distinct names."""
    from pipeline.media.video import stream_name
    from pipeline.stream.runner import StreamSpec

    specs: list[StreamSpec] = []
    for text in sources:
        named = "=" in text.split("://", 1)[0]
        name, source = text.split("=", 1) if named else (stream_name(text), text)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise UserError(f"stream name {name!r} may hold only letters, digits, '_', '-' and '.'")
        if name in {spec.name for spec in specs}:
            raise UserError(f"two streams are named {name!r}; name them, e.g. {name}_2={source}")
        specs.append(StreamSpec(name, source))
    return specs


def run(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.media.video import source_kind
    from pipeline.model.bundle import load_bundle
    from pipeline.stream.runner import Runner, RunOptions, RunSettings

    specs = stream_specs(args.sources)
    for spec in specs:
        if spec.kind == "file" and not Path(spec.source).is_file():
            raise UserError(f"no such video file: {spec.source}")
        # A camera that is unplugged later is reconnected; a device path that never existed is a typo.
        device = spec.source.removeprefix("v4l2://")
        if spec.kind == "device" and device.startswith("/dev/") and not Path(device).exists():
            raise UserError(f"no such capture device: {device}")
    check_outputs(args, args.jsonl, args.metrics_json)
    config = apply_flags(args, load_config(args.config))
    options = RunOptions(live=True, endpoint=args.publish, jsonl=args.jsonl, append=args.append,
                         explain=args.explain, curve=publish_keys(args, config), metrics_port=args.metrics_port,
                         hub=args.hub)
    runner = Runner(load_bundle(config), specs, options, RunSettings.of(config))
    names = ", ".join(f"{spec.name} ({source_kind(spec.source)})" for spec in specs)
    heatmaps = " (heatmaps on explain.<stream>)" if args.explain else ""
    metrics = f"; metrics on http://127.0.0.1:{runner.exporter.port}/metrics" if runner.exporter else ""
    log.info("monitoring %s; publishing on %s%s%s", names, runner.endpoint, heatmaps, metrics)
    return execute(runner, args.metrics_json)
