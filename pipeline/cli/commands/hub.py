"""Relay many monitors to their subscribers through one address: the hub of a hospital's procedure rooms.

Monitors publish into --in (`nero live ... --hub tcp://HUB:5570`); displays and `nero subscribe` connect to
--out as they would to one monitor, and see every room's streams, each with its own gapless `seq`. The hub is
ZeroMQ's own proxy; it adds a heartbeat of its own on topic `hub` (uptime, monitors connected). With
--curve-key and --curve-clients both sides use CURVE and one allow-list (the monitors' and the
subscribers' public keys): monitors then need --hub-key, subscribers --curve-server, both the hub's NAME.key.
Binding an address other machines can reach needs --allow-remote (docs/SCALING.md, docs/SECURITY.md).

example:
  nero hub --in tcp://127.0.0.1:5570 --out tcp://127.0.0.1:5571
  nero live room3=rtsp://10.0.3.9/scope --hub tcp://127.0.0.1:5570
  nero display tcp://127.0.0.1:5571
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from pipeline.cli.console import emit
from pipeline.config import endpoint_problem
from pipeline.errors import UserError

log = logging.getLogger(__name__)

HELP = "relay many monitors to their subscribers through one address (ZeroMQ proxy, CURVE on both sides)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--in", dest="inbound", default="tcp://127.0.0.1:5570", metavar="ENDPOINT",
                        help="where monitors publish to (their --hub; default tcp://127.0.0.1:5570)")
    parser.add_argument("--out", dest="outbound", default="tcp://127.0.0.1:5571", metavar="ENDPOINT",
                        help="where subscribers connect (default tcp://127.0.0.1:5571)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow binding addresses other machines can reach (use CURVE then)")
    parser.add_argument("--curve-key", type=Path, metavar="FILE",
                        help="CURVE: the hub's secret key file (NAME.key_secret from `nero keys`)")
    parser.add_argument("--curve-clients", type=Path, metavar="DIR",
                        help="CURVE allow-list: the public key files (*.key) of the monitors and subscribers")
    parser.add_argument("--high-water-mark", type=int, default=100_000, metavar="N",
                        help="messages held per peer on each side (default 100000)")
    parser.add_argument("--lossless", action="store_true",
                        help="wait for a lagging subscriber instead of dropping its messages (every room "
                             "then waits: for archive replays, not live rooms)")


def run(args: argparse.Namespace) -> int:
    from pipeline.hub import Hub
    from pipeline.security import check_exposure, server_keys

    for flag, endpoint in (("--in", args.inbound), ("--out", args.outbound)):
        problem = endpoint_problem(endpoint)
        if problem:
            raise UserError(f"{flag} {endpoint}: {problem}")
    if args.high_water_mark < 1:
        raise UserError(f"--high-water-mark must be >= 1, got {args.high_water_mark}")
    if (args.curve_key is None) != (args.curve_clients is None):
        raise UserError("CURVE needs both the hub's secret key (--curve-key) and the allow-list (--curve-clients)")
    keys = server_keys(args.curve_key, args.curve_clients) if args.curve_key else None
    for endpoint in (args.inbound, args.outbound):
        warning = check_exposure(endpoint, args.allow_remote, curve=keys is not None)
        if warning:
            log.warning("%s", warning)
    hub = Hub(args.inbound, args.outbound, keys, args.high_water_mark, lossless=args.lossless)
    previous = {sig: signal.signal(sig, lambda *_: hub.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    relay = threading.Thread(target=hub.run, name="hub")
    relay.start()
    log.info("monitors publish to %s, subscribers connect to %s%s", hub.endpoints["--in"], hub.endpoints["--out"],
             " (CURVE)" if keys else "")
    emit(f"in {hub.endpoints['--in']} out {hub.endpoints['--out']}")
    try:
        while relay.is_alive():
            relay.join(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        hub.close()
    log.info("stopped")
    return 0
