"""`nero hub`: many monitors in, one stream out, through ZeroMQ's own proxy (not a broker of ours).

    monitors (`--hub`: their XPUB connects)  ->  XSUB [--in]  == zmq.proxy ==  XPUB [--out]  <-  displays,
                                                  ^ the hub's own heartbeat                       nero subscribe

Messages travel down unchanged, subscriptions up: a display's subscription reaches every monitor (XSUB also
replays the subscriptions it holds to a monitor that connects later), so each stream's `seq` is its own
monitor's and a subscriber checks gaps exactly as if it were connected directly. A stream name must be
unique across the monitors of one hub (name them: `nero live room3=rtsp://...`).

What the hub adds: its own heartbeat on topic `hub` every `heartbeat_s` (uptime and how many monitors are
connected, counted from the XSUB socket's connection events), so a display tells a dead hub from a quiet
room; and CURVE on both sides with one allow-list (the monitors' and the subscribers' public keys).

Queue policy: each side holds `high_water_mark` messages per peer. By default a subscriber that lags loses
its own messages (XPUB drops them, and its `seq` shows the gap), so no room ever waits for a display;
`lossless` (XPUB_NODROP) makes the proxy wait for it instead, and then every room waits: for archive
replays through a hub, not for live rooms.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import zmq
from zmq.utils.monitor import recv_monitor_message

from pipeline import messages
from pipeline.errors import UserError
from pipeline.security import ServerKeys, curve_server, secure_server

log = logging.getLogger(__name__)

CONNECTION_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED


class Hub:
    def __init__(self, inbound: str, outbound: str, curve: ServerKeys | None = None,
                 high_water_mark: int = 100_000, heartbeat_s: float = 1.0, lossless: bool = False) -> None:
        self.context = zmq.Context()
        self.heartbeat_s = heartbeat_s
        self.name = uuid.uuid4().hex
        self.xsub, self.xpub = self.context.socket(zmq.XSUB), self.context.socket(zmq.XPUB)
        self.authenticator = secure_server(self.context, self.xsub, curve) if curve is not None else None
        if curve is not None:
            curve_server(self.xpub, curve)
        for socket in (self.xsub, self.xpub):
            socket.setsockopt(zmq.SNDHWM, high_water_mark)
            socket.setsockopt(zmq.RCVHWM, high_water_mark)
            socket.setsockopt(zmq.LINGER, 0)
        self.xpub.setsockopt(zmq.XPUB_NODROP, int(lossless))
        self.events = self.xsub.get_monitor_socket(CONNECTION_EVENTS)
        # The proxy's stop button: one PAIR peer, made here, in the thread that will press it (the main thread,
        # from a signal handler); a second peer would not be heard.
        self._stop_button = self.context.socket(zmq.PAIR)
        self._stop_button.connect(f"inproc://hub-control-{self.name}")
        self.endpoints = {}
        for socket, endpoint, side in ((self.xsub, inbound, "--in"), (self.xpub, outbound, "--out")):
            try:
                socket.bind(endpoint)
            except zmq.ZMQError as error:
                self.close()
                raise UserError(f"hub {side} {endpoint}: cannot bind: {error}") from None
            self.endpoints[side] = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.xsub.bind(f"inproc://hub-heartbeat-{self.name}")
        self.monitors = 0
        self._stopping = threading.Event()

    def run(self) -> None:
        """Forward until `stop()`; the heartbeat runs beside it."""
        control = self.context.socket(zmq.PAIR)
        control.bind(f"inproc://hub-control-{self.name}")
        beat = threading.Thread(target=self._heartbeat, name="hub-heartbeat", daemon=True)
        beat.start()
        try:
            zmq.proxy_steerable(self.xsub, self.xpub, None, control)
        except zmq.ContextTerminated:
            pass
        finally:
            self._stopping.set()
            beat.join()
            control.close(0)

    def stop(self) -> None:
        """From the thread that made the hub (a signal handler included); again does no harm."""
        self._stop_button.send(b"TERMINATE", zmq.NOBLOCK)

    def close(self) -> None:
        for socket in (self.xsub, self.xpub, self.events, self._stop_button):
            socket.close(0)
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.term()

    def _heartbeat(self) -> None:
        """Its own socket, into its own XSUB: the hub publishes like any monitor."""
        out = self.context.socket(zmq.PUB)
        out.connect(f"inproc://hub-heartbeat-{self.name}")
        started = next_beat = time.monotonic()
        while not self._stopping.is_set():
            while self.events.poll(0):
                event = recv_monitor_message(self.events)["event"]
                self.monitors += 1 if event == zmq.EVENT_ACCEPTED else -1
            now = time.monotonic()
            if now >= next_beat:
                beat = messages.hub_message(time.time(), now - started, self.monitors)
                out.send_multipart([messages.HUB_TOPIC.encode(), messages.encode(beat).encode()])
                next_beat = now + self.heartbeat_s
            self._stopping.wait(min(0.1, self.heartbeat_s))
        out.close(0)
