"""Receive the monitor's messages, for displays and services written in Python.

    with AlertSubscriber("tcp://127.0.0.1:5556", topics=["alert.", "event."]) as subscriber:
        while (message := subscriber.receive(timeout_s=5.0)) is not None:
            if message["type"] == "frame" and message["alert"]:
                ...

Every frame message carries its stream's `seq` (+1 per message from 0). The subscriber checks it: a jump is a
gap (the publisher dropped messages for this subscriber because it lagged, or the network lost them), recorded
in `gaps` and passed to `on_gap`. The first message of a stream sets the count, so a subscriber that joins
late starts from the current sequence without reporting a gap. A monitor that restarted (a `start` event for
a stream already seen, or its sequence going back) is recorded in `restarts` and passed to `on_restart`; the
count starts again. `lag_s(message)` is how long ago the monitor published it (both clocks are the hosts');
a message more than `max_lag_s` old is stale: `stale` says so of the latest one, and `on_lag(True, lag)` is
called when messages start arriving stale, `on_lag(False, lag)` when they are fresh again. A live monitor drops
a lagging subscriber's messages once its queue (publish.high_water_mark) and the kernel's buffers are full;
what was queued until then arrives late, and is marked so here.

A monitor that uses CURVE (pipeline/security.py) needs `curve=client_keys(my_secret_file, monitor_public_file)`;
when the monitor refuses the handshake (a key not on its allow-list, CURVE on one side only), `receive` raises
a UserError that says which, instead of waiting forever: ZeroMQ itself would retry silently.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from pipeline.errors import UserError
from pipeline.security import ClientKeys, secure_client

HANDSHAKE_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL \
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL


@dataclass(frozen=True)
class Gap:
    stream: str
    expected: int   # the seq that should have come
    received: int   # the seq that came

    @property
    def missing(self) -> int:
        return self.received - self.expected


def check_host(endpoint: str) -> None:
    """A tcp:// host that does not resolve is a typo, not a monitor still starting: ZeroMQ would retry it
    forever without a word."""
    transport, _, address = endpoint.partition("://")
    host = address.rpartition(":")[0].strip("[]")
    if transport != "tcp" or host in ("", "*"):
        return
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        raise UserError(f"cannot reach {endpoint}: no host named {host!r}") from None


class AlertSubscriber:
    def __init__(self, endpoint: str, topics: Iterable[str] = ("",), high_water_mark: int = 100_000,
                 on_gap: Callable[[Gap], None] | None = None,
                 on_restart: Callable[[str], None] | None = None, curve: ClientKeys | None = None,
                 max_lag_s: float = 2.0, on_lag: Callable[[bool, float], None] | None = None,
                 receive_buffer_bytes: int | None = None) -> None:
        """`receive_buffer_bytes`: the kernel's receive buffer (SO_RCVBUF; None: the system's default)."""
        self.endpoint = endpoint
        check_host(endpoint)
        self.on_gap, self.on_restart, self.on_lag = on_gap, on_restart, on_lag
        self.max_lag_s = max_lag_s
        self.stale = False              # the latest message was published more than max_lag_s ago
        self.gaps: list[Gap] = []
        self.restarts: list[str] = []   # stream names, once per restart seen
        self.last_seq: dict[str, int] = {}
        self.last_payload = b""   # the raw JSON of the latest message, as published
        self.last_topic = ""
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, high_water_mark)
        if receive_buffer_bytes is not None:
            self.socket.setsockopt(zmq.RCVBUF, receive_buffer_bytes)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.curve = curve is not None
        if curve is not None:
            secure_client(self.socket, curve)
        self.handshakes = self.socket.get_monitor_socket(HANDSHAKE_EVENTS)
        self.poller = zmq.Poller()      # messages, and the handshakes the monitor refused
        self.poller.register(self.socket, zmq.POLLIN)
        self.poller.register(self.handshakes, zmq.POLLIN)
        for topic in topics:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:
            self.socket.connect(endpoint)
        except zmq.ZMQError as error:
            self.close()
            raise UserError(f"cannot connect to {endpoint}: {error} (expected e.g. tcp://127.0.0.1:5556)") from None

    def receive(self, timeout_s: float | None = None) -> dict[str, Any] | None:
        """The next message as a dict; None if nothing arrived within `timeout_s` (None: wait forever)."""
        ready = dict(self.poller.poll(None if timeout_s is None else int(timeout_s * 1000)))
        if self.handshakes in ready:
            self._refused(recv_monitor_message(self.handshakes)["event"])
        if self.socket not in ready:
            return None
        topic, payload, *attachments = self.socket.recv_multipart()
        self.last_topic, self.last_payload = topic.decode(), payload
        message = json.loads(payload)
        if attachments:  # explain.<stream>: [topic, JSON header, PNG]
            message["png"] = attachments[0]
        self._check_lag(self.lag_s(message))
        if message.get("type") == "frame":
            self._check_sequence(message["stream"], message["seq"])
        elif message.get("event") == "start" and message["stream"] in self.last_seq:
            self._restarted(message["stream"])
        return message

    def _refused(self, event: int) -> None:
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            why = "refused this subscriber's key: it is not on the monitor's allow-list (--curve-clients)"
        elif self.curve:
            why = "did not complete the CURVE handshake: it may not use CURVE, or --curve-server is not its key"
        else:
            why = "refused the connection: it uses CURVE, so pass --curve-server and --curve-key"
        raise UserError(f"the monitor at {self.endpoint} {why}")

    @staticmethod
    def lag_s(message: dict[str, Any]) -> float:
        """Seconds since the monitor published `message` (frames: t_publish; events and heartbeats: t)."""
        return time.time() - message.get("t_publish", message.get("t", time.time()))

    def _check_lag(self, lag_s: float) -> None:
        stale = lag_s > self.max_lag_s
        if stale != self.stale and self.on_lag is not None:
            self.on_lag(stale, lag_s)
        self.stale = stale

    def _restarted(self, stream: str) -> None:
        self.restarts.append(stream)
        del self.last_seq[stream]
        if self.on_restart is not None:
            self.on_restart(stream)

    def _check_sequence(self, stream: str, seq: int) -> None:
        last = self.last_seq.get(stream)
        if last is not None and seq <= last:   # its start event was missed: the sequence went back
            self._restarted(stream)
            last = None
        if last is not None and seq > last + 1:
            gap = Gap(stream, last + 1, seq)
            self.gaps.append(gap)
            if self.on_gap is not None:
                self.on_gap(gap)
        self.last_seq[stream] = seq

    @property
    def missing(self) -> int:
        """Frame messages lost so far, over all streams."""
        return sum(gap.missing for gap in self.gaps)

    def close(self) -> None:
        self.socket.disable_monitor()
        self.handshakes.close()
        self.socket.close()
        self.context.term()

    def __enter__(self) -> AlertSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
