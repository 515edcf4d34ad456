"""Publish stage: ZeroMQ messages, multipart [topic, UTF-8 JSON payload], to any number of subscribers.

Input:  (topic, payload) string pairs (pipeline/messages.py builds them), or ready multipart frames (an
        explain.<stream> heatmap: [topic, JSON header, PNG]).
Output: messages on an XPUB socket bound to `endpoint` (tcp://127.0.0.1:* picks a free port; the
        `endpoint` attribute reads the bound address back).

The stage owns its socket and nothing else: it starts no thread and keeps no queue. It is an XPUB rather than
a PUB so that it sees subscriptions arrive (`wait_for_subscribers`, for a replay that must not start before
its subscriber listens). What happens when a subscriber lags is chosen at construction:

- lossless (replay): a send that would exceed a subscriber's high-water mark is refused (`try_send` returns
  False, ZMQ_XPUB_NODROP) and the caller retries a little later: backpressure, nothing lost. (An XPUB socket
  always polls as writable, so there is no event to wait for.)
- not lossless (live): ZeroMQ drops that subscriber's copy once its queue holds `high_water_mark` messages, so
  a slow or dead subscriber never blocks the pipeline nor the other subscribers; the subscriber sees the gap
  in `seq` (pipeline/client.py reports it).
"""

from __future__ import annotations

import zmq

from pipeline.errors import UserError


class Publisher:
    def __init__(self, endpoint: str, high_water_mark: int = 1000, lossless: bool = False,
                 linger_s: float = 2.0) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.SNDHWM, high_water_mark)
        self.socket.setsockopt(zmq.XPUB_VERBOSE, 1)  # pass every subscription up, duplicates too: count them
        self.socket.setsockopt(zmq.XPUB_NODROP, int(lossless))
        self.socket.setsockopt(zmq.LINGER, int(linger_s * 1000))  # deliver what is queued when closing
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError as error:
            self.socket.close(0)
            self.context.term()
            raise UserError(f"cannot publish on {endpoint}: {error}") from None
        self.endpoint: str = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.subscriptions = 0

    def poll_subscriptions(self, timeout_s: float = 0.0) -> int:
        """Read the subscribe/unsubscribe notices that arrived (waiting up to `timeout_s` for the first)."""
        if self.socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            while True:
                try:
                    notice = self.socket.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if notice[:1] == b"\x01":
                    self.subscriptions += 1
                elif notice[:1] == b"\x00":
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
        try:
            self.socket.send_multipart(parts, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def close(self) -> None:
        """Close the socket; returns once queued messages are delivered or `linger_s` has passed."""
        self.socket.close()
        self.context.term()
