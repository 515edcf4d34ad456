"""One monitor's messages, as the page needs them: a subscriber thread per endpoint.

`Feed` runs a `pipeline.client.AlertSubscriber` (so gaps, restarts, lag and refused keys are judged by the
same rules as `nero subscribe`) and turns what it receives into page messages, JSON objects that name their
endpoint:

- frame: the frame message without its `explain` (the page plots score, threshold and alert; the explanation
  comes with the alert_on event), so a 25 fps stream costs the browser ~6 kB/s;
- event, heartbeat: as published;
- explain, nearest, preview: the header, with the picture as a data URL (PNG heatmap, JPEG thumbnails);
- gap (messages this display missed), restart, lag (messages arriving late), and signal: the endpoint's state,
  `connecting` until its first message, `receiving`, `no signal` once nothing (not even a heartbeat, sent
  every second) has come for `silence_s`, `refused` when the monitor refused this display's CURVE key.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pipeline.client import AlertSubscriber, Gap
from pipeline.errors import UserError
from pipeline.security import ClientKeys

log = logging.getLogger(__name__)

TOPICS = ("",)   # every topic a monitor publishes (frames, events, heartbeats, pictures): one subscription,
                 # so that `nero replay --wait-subscribers N` counts a display once
PICTURES = {"explain": "image/png", "nearest": "image/jpeg", "preview": "image/jpeg"}
POLL_S = 0.2


def page_message(endpoint: str, message: dict[str, Any]) -> dict[str, Any]:
    """A monitor's message as the page receives it."""
    out = {key: value for key, value in message.items() if key not in ("explain", "png")} \
        if message.get("type") == "frame" else dict(message)
    picture = out.pop("png", None)
    if picture is not None:
        out["picture"] = f"data:{PICTURES.get(out['type'], 'image/png')};base64,{base64.b64encode(picture).decode()}"
    out["endpoint"] = endpoint
    return out


class Feed:
    def __init__(self, endpoint: str, post: Callable[[dict[str, Any]], None], curve: ClientKeys | None = None,
                 silence_s: float = 3.0) -> None:
        self.endpoint, self.post, self.curve, self.silence_s = endpoint, post, curve, silence_s
        self.signal = ""
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"feed-{endpoint}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.thread.join()

    def _say(self, kind: str, **fields: Any) -> None:
        self.post({"type": kind, "endpoint": self.endpoint, "t": round(time.time(), 6), **fields})

    def _set_signal(self, state: str, detail: str = "") -> None:
        if state != self.signal:
            self.signal = state
            self._say("signal", state=state, detail=detail)
            log.info("%s: %s%s", self.endpoint, state, f" ({detail})" if detail else "")

    def _run(self) -> None:
        self._set_signal("connecting")
        subscriber = AlertSubscriber(
            self.endpoint, topics=TOPICS, curve=self.curve,
            on_gap=lambda gap: self._gap(gap), on_restart=lambda stream: self._say("restart", stream=stream),
            on_lag=lambda stale, lag: self._say("lag", stale=stale, lag_s=round(lag, 3)))
        last = time.monotonic()
        try:
            while not self._stopping.is_set():
                try:
                    message = subscriber.receive(timeout_s=POLL_S)
                except UserError as refused:
                    self._set_signal("refused", str(refused))
                    return
                now = time.monotonic()
                if message is None:
                    if self.signal == "receiving" and now - last > self.silence_s:
                        self._set_signal("no signal", f"nothing for {self.silence_s:g} s, not even a heartbeat")
                    continue
                last = now
                self._set_signal("receiving")
                self.post(page_message(self.endpoint, message))
        finally:
            subscriber.close()

    def _gap(self, gap: Gap) -> None:
        self._say("gap", stream=gap.stream, expected=gap.expected, received=gap.received, missing=gap.missing)
