"""The display's web server (aiohttp): one page, its static files, and a WebSocket that pushes page messages.

The feeds' threads hand each message to the event loop (`call_soon_threadsafe`), which keeps it in `History`
and queues it for every connected browser. A browser that connects (or reconnects) first gets the history:
the last minute of each stream's frames and the latest of everything else, so a page opened mid-procedure
shows the same as one that was open all along.

Queue policy, per browser: at most MAX_QUEUED messages (40 s of one 25 fps stream) wait to be sent. A
browser that falls that far behind (a frozen tab, a saturated link) is disconnected rather than let the
server's memory grow; its page reconnects by itself and starts again from the history. Everything is served
from the package (pipeline/display/static): no CDN, no build step, so it works on a network with no internet.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections import deque
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
HISTORY_S = 60.0
MAX_QUEUED = 1000
LATEST_KINDS = ("heartbeat", "explain", "nearest", "preview", "signal", "lag")


class History:
    """What a browser that connects now must be shown: each stream's last HISTORY_S s of frames and events
    (events are few and carry the alert explanation), gap counts, and the latest message of every other kind."""

    def __init__(self) -> None:
        self.frames: dict[tuple[str, str], deque[dict[str, Any]]] = {}
        self.latest: dict[tuple[str, str, str], dict[str, Any]] = {}

    def add(self, message: dict[str, Any]) -> None:
        kind, endpoint = message["type"], message["endpoint"]
        if kind in ("frame", "event", "gap", "restart"):
            recent = self.frames.setdefault((endpoint, message["stream"]), deque())
            recent.append(message)
            newest = message.get("t_publish", message.get("t"))
            while newest is not None and recent[0].get("t_publish", recent[0].get("t", newest)) < newest - HISTORY_S:
                recent.popleft()
        elif kind in LATEST_KINDS:
            self.latest[(kind, endpoint, message.get("stream", ""))] = message

    def snapshot(self) -> list[dict[str, Any]]:
        """Signals first (they set the banners), then the timeline, then the pictures that belong to it."""
        timeline = [message for recent in self.frames.values() for message in recent]
        timeline.sort(key=lambda m: m.get("t_publish", m.get("t", 0.0)))
        latest = sorted(self.latest.values(), key=lambda m: m["type"] != "signal")
        signals = [m for m in latest if m["type"] == "signal"]
        return [*signals, *timeline, *latest[len(signals):]]


class DisplayServer:
    def __init__(self, title: str = "nero-monitor", silence_s: float = 3.0) -> None:
        self.title, self.silence_s = title, silence_s
        self.history = History()
        self.clients: set[asyncio.Queue[str | None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app = web.Application()
        self.app.add_routes([web.get("/", self._page), web.get("/ws", self._socket),
                             web.static("/static", STATIC, show_index=False)])

    def post(self, message: dict[str, Any]) -> None:
        """From any thread: hand a page message to the event loop."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._deliver, message)

    def _deliver(self, message: dict[str, Any]) -> None:
        self.history.add(message)
        text = json.dumps(message, separators=(",", ":"))
        for queue in list(self.clients):
            if queue.qsize() >= MAX_QUEUED:
                log.warning("a browser fell %d messages behind: disconnected (it reconnects by itself)", MAX_QUEUED)
                self.clients.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(text)

    async def _page(self, _request: web.Request) -> web.Response:
        page = (STATIC / "index.html").read_text().replace("{{title}}", html.escape(self.title)) \
            .replace("{{silence}}", f"{self.silence_s:g}")
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=10.0)
        await socket.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        for message in self.history.snapshot():
            queue.put_nowait(json.dumps(message, separators=(",", ":")))
        self.clients.add(queue)
        sender = asyncio.create_task(self._send(socket, queue))
        try:
            async for incoming in socket:   # the page sends nothing; this notices when it goes away
                if incoming.type == WSMsgType.ERROR:
                    break
        finally:
            self.clients.discard(queue)
            sender.cancel()
        return socket

    @staticmethod
    async def _send(socket: web.WebSocketResponse, queue: asyncio.Queue[str | None]) -> None:
        while (text := await queue.get()) is not None:
            await socket.send_str(text)
        await socket.close()

    async def serve(self, host: str, port: int, started: asyncio.Event | None = None) -> None:
        """Serve until cancelled. `started` is set once the port is bound (`self.port` then holds it)."""
        self.loop = asyncio.get_running_loop()
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self.port = int(runner.addresses[0][1])
        if started is not None:
            started.set()
        try:
            await asyncio.Event().wait()
        finally:
            for queue in list(self.clients):
                queue.put_nowait(None)
            await runner.cleanup()
