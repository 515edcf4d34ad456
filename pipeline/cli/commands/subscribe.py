"""Listen to a running monitor (`nero replay` or `nero live`): a readable line per alert, every message kept.

Prints one line per event (stream start and stop, alert on and off, reconnections, errors) and reports gaps in
a stream's sequence numbers (messages the subscriber missed). --jsonl writes every received JSON object, one
per line, exactly as published. Stops after --count alerts, after --timeout seconds in which nothing arrived
(heartbeats count: a running monitor sends one every second, so silence means it has stopped), or on Ctrl-C.
The silence is counted from the first message: a subscriber started before its monitor waits for it.

example:
  nero subscribe tcp://127.0.0.1:5556 --topic alert. --topic event. --jsonl received.jsonl --timeout 5
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pipeline.cli.console import emit
from pipeline.client import AlertSubscriber, Gap
from pipeline.errors import UserError

log = logging.getLogger(__name__)

HELP = "print the alerts of a running monitor and record its messages"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint", metavar="ENDPOINT", help="the monitor's endpoint, e.g. tcp://127.0.0.1:5556")
    parser.add_argument("--topic", action="append", metavar="PREFIX",
                        help="receive only topics starting with PREFIX (repeatable; default: all). Topics: "
                             "alert.<stream> (frames), event.<stream>, heartbeat")
    parser.add_argument("--jsonl", type=Path, metavar="FILE", help="write every received JSON object here")
    parser.add_argument("--count", type=int, metavar="N", help="exit after N alerts (alert_on events)")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="exit after S seconds in which nothing arrived (counted from the first message)")


def describe(message: dict[str, Any]) -> str | None:
    """A readable line for an event, None for other messages."""
    if message.get("type") != "event":
        return None
    clock = time.strftime("%H:%M:%S", time.localtime(message["t"]))
    head = f"{clock} [{message['stream']}]"
    event = message["event"]
    if event == "alert_on":
        explain = message.get("explain") or {}
        return (f"{head} ALERT ON   frame {message['frame']} ({message['pts']:.2f} s): "
                f"{message.get('detector', 'score')} {message['score']:.4g} > threshold "
                f"{message['threshold']:.4g}, nearest class "
                f"{explain.get('nearest', '?')}")
    if event == "alert_off":
        return f"{head} alert off  frame {message['frame']} ({message['pts']:.2f} s)"
    if event == "start":
        fps = f" {message['fps']:.3g} fps" if message.get("fps") else ""
        return f"{head} start: {message.get('codec')} {message.get('width')}x{message.get('height')}{fps}"
    if event == "stop":
        return f"{head} stop ({message.get('reason')}) after {message['last_seq'] + 1} frames"
    if event == "reconnecting":
        return f"{head} reconnecting in {message['retry_in_s']:.1f} s: {message['reason']}"
    return f"{head} {event}: {message.get('message', '')}"


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1 or args.timeout is not None and args.timeout <= 0:
        raise UserError("--count and --timeout must be positive")

    def on_gap(gap: Gap) -> None:
        log.warning("[%s] gap: %d message(s) missed (seq %d..%d)", gap.stream, gap.missing, gap.expected,
                    gap.received - 1)

    received = alerts = 0
    previous = signal.signal(signal.SIGTERM, _interrupt)
    with ExitStack() as stack:
        stack.callback(signal.signal, signal.SIGTERM, previous)
        subscriber = stack.enter_context(AlertSubscriber(args.endpoint, args.topic or [""], on_gap=on_gap))
        out = stack.enter_context(args.jsonl.open("w", encoding="utf-8", buffering=1)) if args.jsonl else None
        try:
            while args.count is None or alerts < args.count:
                message = subscriber.receive(args.timeout if received else None)
                if message is None:
                    break
                received += 1
                if out is not None:
                    out.write(subscriber.last_payload.decode() + "\n")
                line = describe(message)
                if line is not None:
                    emit(line)
                alerts += message.get("event") == "alert_on"
        except KeyboardInterrupt:
            pass
    log.info("received %d messages, %d alerts, %d missed", received, alerts, subscriber.missing)
    return 0
