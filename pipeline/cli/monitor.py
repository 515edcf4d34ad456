"""What `nero replay` and `nero live` share: their common options, and running a monitor for a command.

Light at import (argparse only): the command modules import it to build the parser.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.console import emit
from pipeline.config import endpoint_problem
from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.security import ClientKeys, ServerKeys
    from pipeline.stream.runner import Runner

log = logging.getLogger(__name__)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `nero replay` and `nero live` share."""
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: the bundled configs/default.yaml)")
    parser.add_argument("--publish", metavar="ENDPOINT",
                        help="ZeroMQ endpoint to bind (default: the config's publish.endpoint, "
                             "tcp://127.0.0.1:5556); one other machines can reach needs --allow-remote")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a bind other machines can reach (e.g. tcp://0.0.0.0:5556); use CURVE then")
    parser.add_argument("--curve-key", type=Path, metavar="FILE",
                        help="CURVE: the monitor's secret key file (NAME.key_secret from `nero keys`); "
                             "subscribers need its NAME.key")
    parser.add_argument("--curve-clients", type=Path, metavar="DIR",
                        help="CURVE allow-list: a folder of the subscribers' public key files (*.key)")
    parser.add_argument("--hub", metavar="ENDPOINT",
                        help="publish into a `nero hub` at ENDPOINT (its --in) instead of binding a port")
    parser.add_argument("--hub-key", type=Path, metavar="FILE",
                        help="CURVE to the hub: the hub's public key file (with --curve-key, this monitor's "
                             "secret key, which must be on the hub's allow-list)")
    parser.add_argument("--jsonl", type=Path, metavar="FILE",
                        help="audit file: every frame and event message, one JSON object per line")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace an existing --jsonl audit file")
    existing.add_argument("--append", action="store_true", help="add to an existing --jsonl audit file")
    parser.add_argument("--metrics-json", type=Path, metavar="FILE", help="write the run's figures here")
    parser.add_argument("--preview-fps", type=float, metavar="FPS",
                        help="publish a small JPEG of what the model sees on preview.<stream>, FPS times a second "
                             "per stream, for `nero display` (default: the config's publish.preview_fps, 0: off)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics while running (frames, "
                             "drops, alerts, latency histogram, queue depths per stream; needs the metrics "
                             "extra: pip install 'nero-monitor[metrics]')")


def check_outputs(args: argparse.Namespace, audit: Path | None, *files: Path | None) -> None:
    """Before anything loads or is written: the audit is never replaced unasked, and every output file's
    folder exists and can be written (a run must not fail on its last step, or lose its figures)."""
    if args.publish is not None:
        problem = endpoint_problem(args.publish)
        if problem:
            raise UserError(f"--publish {args.publish}: {problem}")
    if args.metrics_port is not None:
        check_metrics_port(args.metrics_port)
    if (args.overwrite or args.append) and audit is None:
        raise UserError(f"--{'overwrite' if args.overwrite else 'append'} applies to the --jsonl audit file, "
                        "and none was given")
    if audit is not None and audit.exists() and not (args.overwrite or args.append):
        raise UserError(f"the audit file {audit} exists: pass --overwrite to replace it or --append to add to it")
    for path in (audit, *files):
        if path is None:
            continue
        folder = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise UserError(f"{path} is a folder, not a file")
        if not folder.is_dir():
            raise UserError(f"cannot write {path}: no folder {folder}")
        if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise UserError(f"cannot write {path}: permission denied")


def check_metrics_port(port: int) -> None:
    """--metrics-port: prometheus-client is installed and the port is free on 127.0.0.1 (0: any free port)."""
    if not 0 <= port <= 65535:
        raise UserError(f"--metrics-port {port}: not a port number (0-65535)")
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise UserError("--metrics-port needs prometheus-client: pip install 'nero-monitor[metrics]'") from None
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise UserError(f"--metrics-port {port}: cannot serve on 127.0.0.1:{port}: {error.strerror}") from None


def apply_flags(args: argparse.Namespace, config: Config) -> Config:
    """The flags that override a config value (checked like the config's own)."""
    if args.preview_fps is not None:
        if not args.preview_fps >= 0:
            raise UserError(f"--preview-fps must be >= 0, got {args.preview_fps}")
        config.publish.preview_fps = args.preview_fps
    return config


def publish_keys(args: argparse.Namespace, config: Config) -> ServerKeys | ClientKeys | None:
    """Who may subscribe, from the flags or else the config, checked before the model loads: a bind other
    machines can reach is refused unless allowed, and warned about without CURVE. With --hub, the monitor's
    keys as the hub's client instead (the hub keeps the allow-list)."""
    from pipeline.security import check_exposure, client_keys, is_loopback, server_keys

    publish = config.publish
    key = args.curve_key or (config.resolve(publish.curve_key) if publish.curve_key else None)
    if args.hub is not None:
        problem = endpoint_problem(args.hub)
        if problem or not args.hub.startswith(("tcp://", "ipc://")):
            raise UserError(f"--hub {args.hub}: {problem or 'expected tcp://HOST:PORT or ipc://PATH'}")
        if args.curve_clients:
            raise UserError("--curve-clients has no use with --hub: the hub keeps the allow-list")
        if (key is None) != (args.hub_key is None):
            raise UserError("CURVE to a hub needs both --hub-key (the hub's public key) and --curve-key (this "
                            "monitor's secret key)")
        if key is None and not is_loopback(args.hub):
            log.warning("publishing to the hub at %s without CURVE: the alerts cross the network unencrypted "
                        "(docs/SECURITY.md)", args.hub)
        return client_keys(key, args.hub_key) if key is not None else None
    if args.hub_key is not None:
        raise UserError("--hub-key applies to --hub, and none was given")
    clients = args.curve_clients or (config.resolve(publish.curve_clients) if publish.curve_clients else None)
    if (key is None) != (clients is None):
        raise UserError("CURVE needs both the monitor's secret key (--curve-key, publish.curve_key) and the "
                        "allow-list folder (--curve-clients, publish.curve_clients)")
    keys = server_keys(key, clients) if key is not None else None
    warning = check_exposure(args.publish or publish.endpoint, args.allow_remote or publish.allow_remote,
                             curve=keys is not None)
    if warning:
        log.warning("%s", warning)
    return keys


def execute(runner: Runner, metrics_json: Path | None = None) -> int:
    """Run a monitor for a command: signals stop it cleanly, the summary goes to stdout, errors exit non-zero.

    The first SIGINT or SIGTERM asks for a clean stop (drain, flush, close); a second one aborts at once
    (exit 130).
    """
    def on_signal(signum: int, _frame: object) -> None:
        if not runner.stop():
            # Abort at once. Not by raising KeyboardInterrupt: the main thread would unwind while the decoder,
            # scorer and ZeroMQ threads still run in C code, and the interpreter's exit then ended in SIGABRT
            # (rc 134). The audit loses nothing: each line reaches the OS in one write, never half of one.
            log.warning("%s again: aborting now; messages not yet sent are lost", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(130)
        log.warning("%s: stopping after the frames in flight (send it again to abort)",
                    signal.Signals(signum).name)

    def after_run(signum: int, _frame: object) -> None:
        log.warning("%s: the run has already stopped; finishing its summary", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            report = runner.run()
        finally:   # a signal now would kill the process half-way through its summary: note it, go on
            for sig in previous:
                signal.signal(sig, after_run)
        emit(report.format())
        if metrics_json is not None:
            metrics_json.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if report.errors:
        raise UserError("; ".join(report.errors))
    return 0
