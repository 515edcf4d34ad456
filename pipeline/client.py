"""Receive the monitor's messages, for displays and services written in Python.

    with AlertSubscriber("tcp://127.0.0.1:5556", topics=["alert.", "event."]) as subscriber:
        while (message := subscriber.receive(timeout_s=5.0)) is not None:
            if message["type"] == "frame" and message["alert"]:
                ...

Every frame message carries its stream's `seq` (+1 per message from 0). The subscriber checks it: a jump is a
gap (the publisher dropped messages for this subscriber because it lagged, or the network lost them), recorded
in `gaps` and passed to `on_gap`. The first message of a stream sets the count, so a subscriber that joins
late starts from the current sequence without reporting a gap; a sequence that goes back means the monitor
restarted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import zmq

from pipeline.errors import UserError


@dataclass(frozen=True)
class Gap:
    stream: str
    expected: int   # the seq that should have come
    received: int   # the seq that came

    @property
    def missing(self) -> int:
        return self.received - self.expected


class AlertSubscriber:
    def __init__(self, endpoint: str, topics: Iterable[str] = ("",), high_water_mark: int = 100_000,
                 on_gap: Callable[[Gap], None] | None = None) -> None:
        self.endpoint = endpoint
        self.on_gap = on_gap
        self.gaps: list[Gap] = []
        self.last_seq: dict[str, int] = {}
        self.last_payload = b""   # the raw JSON of the latest message, as published
        self.last_topic = ""
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, high_water_mark)
        self.socket.setsockopt(zmq.LINGER, 0)
        for topic in topics:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:
            self.socket.connect(endpoint)
        except zmq.ZMQError as error:
            self.close()
            raise UserError(f"cannot connect to {endpoint}: {error} (expected e.g. tcp://127.0.0.1:5556)") from None

    def receive(self, timeout_s: float | None = None) -> dict[str, Any] | None:
        """The next message as a dict; None if nothing arrived within `timeout_s` (None: wait forever)."""
        if not self.socket.poll(None if timeout_s is None else int(timeout_s * 1000)):
            return None
        topic, payload, *attachments = self.socket.recv_multipart()
        self.last_topic, self.last_payload = topic.decode(), payload
        message = json.loads(payload)
        if attachments:  # explain.<stream>: [topic, JSON header, PNG]
            message["png"] = attachments[0]
        if message.get("type") == "frame":
            self._check_sequence(message["stream"], message["seq"])
        return message

    def _check_sequence(self, stream: str, seq: int) -> None:
        last = self.last_seq.get(stream)
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
        self.socket.close()
        self.context.term()

    def __enter__(self) -> AlertSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
