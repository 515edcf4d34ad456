"""Show one or more monitors in a browser: the procedure-room display.

Serves one page on http://127.0.0.1:PORT/ (printed on stdout when it is ready) that follows every stream of
every ENDPOINT: a large banner (IN DISTRIBUTION, OUT OF DISTRIBUTION with its reason, NO SIGNAL when the
monitor falls silent, RECONNECTING), the score against its threshold over the last minute with the alerts
on it, the last alert's explanation (deviating neurons, nearest training window; the heatmap when the
monitor runs with --explain), frame rate, latency, drops and missed messages, and a live preview when the
monitor publishes one (publish.preview_fps or --preview-fps). Everything is served locally: no internet
needed. Needs the display extra: pip install 'nero-monitor[display]'.

The page has no login: it listens on loopback unless --host names another address, which also needs
--allow-remote (then put it behind the hospital's authenticating proxy; docs/DISPLAY.md).

example:
  nero display tcp://127.0.0.1:5556 --port 8080
  nero display tcp://10.0.4.2:5556 --curve-server keys/monitor.key --curve-key keys/display.key_secret
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

from pipeline.cli.console import emit
from pipeline.cli.subscriber import add_curve_arguments, curve_keys
from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.display.feed import Feed
    from pipeline.display.server import DisplayServer

log = logging.getLogger(__name__)

HELP = "show monitors' alerts in a browser page (local web server, WebSocket push)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoints", nargs="+", metavar="ENDPOINT", help="a monitor's endpoint, e.g. "
                        "tcp://127.0.0.1:5556 (several: one page for all their streams)")
    parser.add_argument("--port", type=int, default=8080, help="the page's port (default 8080; 0: a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to serve on (default 127.0.0.1: this machine only)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other machines can reach (the page has no login)")
    parser.add_argument("--title", default="nero-monitor", help="the page's title (e.g. the room's name)")
    parser.add_argument("--silence", type=float, default=3.0, metavar="S",
                        help="show NO SIGNAL when a monitor sent nothing for S seconds (heartbeats come every "
                             "second; default 3)")
    add_curve_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.client import check_host
    from pipeline.security import is_loopback

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: not a port number (0-65535)")
    if not is_loopback(f"tcp://{args.host}:{args.port}") and not args.allow_remote:
        raise UserError(f"--host {args.host} can be reached from other machines and the page has no login: "
                        "pass --allow-remote to mean it (docs/DISPLAY.md)")
    if args.silence <= 0:
        raise UserError(f"--silence must be > 0, got {args.silence}")
    curve = curve_keys(args)
    for endpoint in args.endpoints:
        if "://" not in endpoint:
            raise UserError(f"{endpoint}: expected a ZeroMQ endpoint such as tcp://127.0.0.1:5556")
        check_host(endpoint)
    try:
        from pipeline.display.feed import Feed
        from pipeline.display.server import DisplayServer
    except ImportError as missing:
        raise UserError(f"nero display needs the display extra ({missing.name} is missing): "
                        "pip install 'nero-monitor[display]'") from None
    server = DisplayServer(args.title, args.silence)
    feeds = [Feed(endpoint, server.post, curve, args.silence) for endpoint in args.endpoints]
    try:
        asyncio.run(_serve(server, feeds, args.host, args.port))
    except OSError as error:
        raise UserError(f"cannot serve the page on {args.host}:{args.port}: {error.strerror or error}") from None
    return 0


async def _serve(server: DisplayServer, feeds: list[Feed], host: str, port: int) -> None:
    started = asyncio.Event()
    serving = asyncio.create_task(server.serve(host, port, started))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiting = asyncio.create_task(stop.wait())
    await asyncio.wait([serving, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if serving.done():   # it failed to bind: raise its error
        waiting.cancel()
        await serving
    for feed in feeds:
        feed.start()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    log.info("following %s", ", ".join(feed.endpoint for feed in feeds))
    emit(f"http://{shown}:{server.port}/")
    await asyncio.wait([serving, waiting], return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping")
    serving.cancel()
    for feed in feeds:
        await asyncio.to_thread(feed.stop)
    with contextlib.suppress(asyncio.CancelledError):
        await serving
