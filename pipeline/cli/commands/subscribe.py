"""Listen to a running monitor (`nero replay` or `nero live`): a readable line per alert, every message kept.

Prints one line per event (stream start and stop, alert on and off, reconnections, errors) and reports gaps in
a stream's sequence numbers (messages the subscriber missed). --jsonl writes every received JSON object, one
per line, exactly as published. Stops after --count alerts, after --timeout seconds in which nothing arrived
(heartbeats count: a running monitor sends one every second, so silence means it has stopped), or on Ctrl-C.
The silence is counted from the first message: a subscriber started before its monitor waits for it (and
says so after WAIT_NOTICE_S). While it runs it reports, on stderr, what an operator must know: the monitor
restarted (a stream's `start` again, or its sequence going back), fell silent (no message, not even a
heartbeat, for --silence seconds, while a stream it heard from has not sent its `stop`) or came back, and
messages arriving late (more than --max-lag seconds after they were published: this subscriber or its
network lags).

A monitor that uses CURVE needs --curve-server (its public key file) and --curve-key (this subscriber's
secret key file, whose public half is on the monitor's allow-list); a refused key is one line, exit 2.

example:
  nero subscribe tcp://127.0.0.1:5556 --topic alert. --topic event. --jsonl received.jsonl --timeout 5
  nero subscribe tcp://10.0.4.2:5556 --curve-server keys/monitor.key --curve-key keys/display.key_secret
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
from pipeline.cli.subscriber import add_curve_arguments, curve_keys
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
    parser.add_argument("--silence", type=float, metavar="S", default=3.0,
                        help="warn when nothing arrived for S seconds (heartbeats come every second; default 3), "
                             "unless every stream has sent its stop event")
    add_curve_arguments(parser)
    parser.add_argument("--max-lag", type=float, metavar="S", default=2.0,
                        help="warn when messages arrive more than S seconds after they were published (default 2)")


def describe(message: dict[str, Any]) -> str | None:
    """A readable line for an event, None for other messages."""
    if message.get("type") != "event":
        return None
    clock = time.strftime("%H:%M:%S", time.localtime(message["t"]))
    head = f"{clock} [{message['stream']}]"
    event = message["event"]
    if event == "alert_on":
        explain = message.get("explain") or {}
        level = message.get("alert_threshold", message["threshold"])
        return (f"{head} ALERT ON   frame {message['frame']} ({message['pts']:.2f} s): "
                f"{message.get('detector', 'score')} {message['score']:.4g} (alert threshold "
                f"{level:.4g}), reason {message.get('reason') or 'score'}, nearest class {explain.get('nearest', '?')}")
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


WAIT_NOTICE_S = 2.0


class Watch:
    """Silence, as an operator is told of it: once when it starts, once when it ends. Silence after every
    stream heard from has sent its `stop` event is the monitor finished, not failing: no warning then."""

    def __init__(self, silence_s: float) -> None:
        self.silence_s = silence_s
        self.last_arrival: float | None = None
        self.silent = False
        self.streams: set[str] = set()   # heard from and not stopped
        self.stopped = False              # some stream has sent its stop event

    def arrived(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        if self.silent:
            level = logging.INFO if self.finished() else logging.WARNING
            log.log(level, "monitor back after %.1f s of silence", now - self.last_arrival)
        self.silent, self.last_arrival = False, now
        stream = message.get("stream")
        if stream is not None and message.get("event") == "stop":
            self.streams.discard(stream)
            self.stopped = True
        elif stream is not None:
            self.streams.add(stream)

    def finished(self) -> bool:
        """Every stream heard from has stopped."""
        return self.stopped and not self.streams

    def waited(self, endpoint: str) -> None:
        """Nothing arrived within one poll."""
        if self.last_arrival is None:
            return
        quiet = time.monotonic() - self.last_arrival
        if quiet >= self.silence_s and not self.silent:
            self.silent = True
            if self.finished():
                log.info("every stream has stopped; nothing from %s for %.1f s", endpoint, quiet)
            else:
                log.warning("monitor silent: nothing from %s for %.1f s, not even a heartbeat", endpoint, quiet)


def run(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1 or args.timeout is not None and args.timeout <= 0:
        raise UserError("--count and --timeout must be positive")
    if args.silence <= 0 or args.max_lag <= 0:
        raise UserError("--silence and --max-lag must be positive")
    curve = curve_keys(args)

    def on_gap(gap: Gap) -> None:
        log.warning("[%s] gap: %d message(s) missed (seq %d..%d)", gap.stream, gap.missing, gap.expected,
                    gap.received - 1)

    def on_restart(stream: str) -> None:
        log.warning("[%s] the monitor restarted: its sequence starts again", stream)

    def on_lag(stale: bool, lag_s: float) -> None:
        if stale:
            log.warning("messages arrive %.1f s after they were published (more than --max-lag %g s): this "
                        "subscriber or its network lags", lag_s, args.max_lag)
        else:
            log.warning("caught up: messages arrive %.1f s after they were published", lag_s)

    received = alerts = 0
    watch = Watch(args.silence)
    started = time.monotonic()
    # Both stop it as Ctrl-C does, like every other long-running command: taking SIGINT explicitly also covers
    # a subscriber started from a script's background job, which inherits SIGINT ignored (a test suite run so
    # left `nero subscribe` deaf to it).
    with ExitStack() as stack:
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            stack.callback(signal.signal, stop_signal, signal.signal(stop_signal, _interrupt))
        subscriber = stack.enter_context(AlertSubscriber(args.endpoint, args.topic or [""], on_gap=on_gap,
                                                         on_restart=on_restart, curve=curve,
                                                         max_lag_s=args.max_lag, on_lag=on_lag))
        out = stack.enter_context(args.jsonl.open("w", encoding="utf-8", buffering=1)) if args.jsonl else None
        told_waiting = False
        try:
            while args.count is None or alerts < args.count:
                poll = min(args.silence, WAIT_NOTICE_S, args.timeout or WAIT_NOTICE_S)
                message = subscriber.receive(poll)
                if message is None:
                    watch.waited(args.endpoint)
                    if not received and not told_waiting and time.monotonic() - started >= WAIT_NOTICE_S:
                        log.info("waiting for a monitor at %s (nothing received yet)", args.endpoint)
                        told_waiting = True
                    if received and args.timeout is not None and \
                            time.monotonic() - watch.last_arrival >= args.timeout:
                        break
                    continue
                received += 1
                watch.arrived(message)
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
