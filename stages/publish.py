"""Publish stage: ZeroMQ messages, multipart [topic, UTF-8 JSON payload], to any number of subscribers.

Input:  (topic, payload) string pairs (pipeline/messages.py builds them), or ready multipart frames (an
        explain.<stream> heatmap: [topic, JSON header, PNG]).
Output: messages on an XPUB socket bound to `endpoint` (tcp://127.0.0.1:* picks a free port; the
        `endpoint` attribute reads the bound address back), or connected to a hub's XSUB socket there
        (`connect`, `nero hub`: the hub forwards its subscribers' subscriptions, which arrive here the same way).

The stage owns its socket and nothing else: it starts no thread and keeps no queue. It is an XPUB rather than
a PUB so that it sees subscriptions arrive (`wait_for_subscribers`, for a replay that must not start before
its subscriber listens). What happens when a subscriber lags is chosen at construction:

- lossless (replay): a send that would exceed a subscriber's high-water mark is refused (`try_send` returns
  False, ZMQ_XPUB_NODROP) and the caller retries a little later: backpressure, nothing lost. (An XPUB socket
  always polls as writable, so there is no event to wait for.)
- not lossless (live): ZeroMQ drops that subscriber's copy once its queue holds `high_water_mark` messages, so
  a slow or dead subscriber never blocks the pipeline nor the other subscribers; the subscriber sees the gap
  in `seq` (pipeline/client.py reports it).

Subscriptions are applied by hand (ZMQ_XPUB_MANUAL), a few at a time, before each send, because anyone who
reaches the port can send them: a flood of 1.7 M distinct subscribe frames in 15 s silenced the alerts for
6.7 s, cut the frame rate from 25 to 10 fps and grew the process by 1.7 GB (every notice drained in one
loop, every distinct topic kept in ZeroMQ's subscription trie). Now
- a subscription that is not a prefix of a topic this run publishes can match nothing, so it is dropped
  unapplied: the trie that every send walks holds only the run's topics and their prefixes;
- at most NOTICES_PER_SEND notices are read before a send, so a flood costs the hot path a bounded slice;
- each peer's notices wait in a pipe of SUBSCRIPTION_HWM messages, which holds a flooding peer back by TCP
  while the socket is idle; a message over MAX_SUBSCRIPTION_BYTES disconnects its sender.
What is left: ZeroMQ still reads every notice a connected peer sends into its own queue whenever the socket
is used (3.25 M in 15 s grew the monitor by 250 MB, against 1.7 GB before), and no option of the socket
caps that. Peers that are not on the CURVE allow-list never connect at all (docs/SECURITY.md); the runner
warns when ignored subscriptions pour in. Measured side by side: docs/RELIABILITY.md, the flood row.
"""

from __future__ import annotations

from collections.abc import Sequence

import zmq

from pipeline.errors import UserError
from pipeline.security import ClientKeys, ServerKeys, secure_client, secure_server

SUBSCRIPTION_HWM = 16          # subscribe/unsubscribe notices one peer may have waiting
NOTICES_PER_SEND = 256         # read before each send; at ~3 us each, under 1 ms
MAX_SUBSCRIPTION_BYTES = 4096  # a longer message from a subscriber ends its connection (the CURVE
                               # handshake's own commands count: 256 refused every key)


class Publisher:
    def __init__(self, endpoint: str, high_water_mark: int = 1000, lossless: bool = False,
                 linger_s: float = 2.0, topics: Sequence[str] | None = None,
                 curve: ServerKeys | ClientKeys | None = None, send_buffer_bytes: int | None = None,
                 connect: bool = False) -> None:
        """`topics`: every topic this run publishes; a subscription that is a prefix of none of them is never
        applied (None: any subscription is, for a publisher whose topics are not known in advance).
        `curve`: encrypt, and admit only the subscribers on its allow-list (pipeline/security.py); with
        `connect`, the monitor's own keys and the hub's public key (the hub keeps the allow-list).
        `send_buffer_bytes`: the kernel's send buffer per connection (None: the system's)."""
        self.topics = None if topics is None else [topic.encode() for topic in topics]
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.XPUB)
        self.authenticator = None
        if isinstance(curve, ServerKeys):
            self.authenticator = secure_server(self.context, self.socket, curve)
        elif curve is not None:
            secure_client(self.socket, curve)
        self.socket.setsockopt(zmq.SNDHWM, high_water_mark)
        if send_buffer_bytes is not None:
            self.socket.setsockopt(zmq.SNDBUF, send_buffer_bytes)
        self.socket.setsockopt(zmq.RCVHWM, SUBSCRIPTION_HWM)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
        self.socket.setsockopt(zmq.XPUB_MANUAL, 1)   # every notice comes up; we decide what is applied
        self.socket.setsockopt(zmq.XPUB_NODROP, int(lossless))
        self.socket.setsockopt(zmq.LINGER, int(linger_s * 1000))  # deliver what is queued when closing
        try:
            if connect:
                self.socket.connect(endpoint)
            else:
                self.socket.bind(endpoint)
        except zmq.ZMQError as error:
            self.socket.close(0)
            self._end()
            raise UserError(f"cannot {'reach the hub at' if connect else 'publish on'} {endpoint}: {error}") from None
        self.endpoint: str = endpoint if connect else self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.subscriptions = 0
        self.ignored_subscriptions = 0

    def poll_subscriptions(self, timeout_s: float = 0.0, limit: int = NOTICES_PER_SEND) -> int:
        """Apply up to `limit` subscribe/unsubscribe notices that arrived (waiting up to `timeout_s` for the
        first); returns the subscriptions in force."""
        if not self.socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            return self.subscriptions
        for _ in range(limit):
            try:
                notice = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            kind, topic = notice[:1], notice[1:]
            if kind not in (b"\x00", b"\x01"):
                continue
            if self.topics is not None and not any(known.startswith(topic) for known in self.topics):
                self.ignored_subscriptions += 1
                continue
            # In manual mode a (un)subscription applies to the peer whose notice was read last: this one.
            if kind == b"\x01":
                self.socket.setsockopt(zmq.SUBSCRIBE, topic)
                self.subscriptions += 1
            else:
                self.socket.setsockopt(zmq.UNSUBSCRIBE, topic)
                self.subscriptions -= 1
        return self.subscriptions

    def wait_for_subscribers(self, count: int, timeout_s: float) -> bool:
        """Wait up to `timeout_s` until at least `count` subscriptions are active."""
        return self.poll_subscriptions(timeout_s) >= count

    def try_send(self, topic: str, payload: str) -> bool:
        """Send without blocking; False only in lossless mode when a subscriber's queue is full."""
        return self.try_send_parts([topic.encode(), payload.encode()])

    def try_send_parts(self, parts: list[bytes]) -> bool:
        """`try_send` for a message already in parts, the topic first (binary payloads: PNG heatmaps)."""
        self.poll_subscriptions()
        try:
            self.socket.send_multipart(parts, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def close(self) -> None:
        """Close the socket; returns once queued messages are delivered or `linger_s` has passed."""
        self.socket.close()
        self._end()

    def _end(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.term()
