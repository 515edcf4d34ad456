"""The preview thread: JPEG pictures of what the model sees, for `nero display`, off the hot path.

The publish thread `offer`s each stream's frames; `stages.preview.Throttle` lets through at most
`publish.preview_fps` a second per stream, into a queue that holds one frame per stream and replaces it
when a newer one comes (drop oldest: a preview is worth only while it is current), so `offer` never waits.
This thread encodes them and hands each message to `done` (the runner's outbox, which the publish thread
drains, since only that thread may touch the socket).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from pipeline.media.yuv import YuvImage, rgb_array
from pipeline.stream.queues import END, StageQueue
from stages.preview import Throttle, preview


class PreviewWorker:
    def __init__(self, fps: float, width: int, done: Callable[[list[bytes]], None]) -> None:
        self.throttle, self.width, self.done = Throttle(fps), width, done
        self.pending = StageQueue(1, "drop_oldest")
        self.thread = threading.Thread(target=self._run, name="preview", daemon=True)
        self.sent = 0

    def start(self) -> None:
        self.thread.start()

    def offer(self, stream: str, seq: int, image: np.ndarray | YuvImage, now: float) -> None:
        """Publish thread: never waits."""
        if self.throttle.due(stream, now):
            self.pending.put((stream, seq, image), stream)

    def close(self) -> None:
        self.pending.close()
        self.thread.join()

    def _run(self) -> None:
        while (item := self.pending.get()) is not END:
            if item is not None:
                stream, seq, image = item
                self.done(preview(stream, seq, rgb_array(image), self.width))   # a GPU frame downloaded here
                self.sent += 1
