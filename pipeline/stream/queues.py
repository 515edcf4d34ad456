"""The bounded queue between two of the runner's threads, and the policy for when it is full."""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

END = object()             # what a closed and empty queue returns


class StageQueue:
    """A bounded FIFO between two threads, with a per-stream capacity and a policy for when it is full.

    "block": `put` waits for room (lossless). "drop_oldest": `put` never waits; it removes the stream's oldest
    queued item and counts the drop (latency first). Control items (`stream=None`) are never dropped and do
    not count against the capacity. `close()` wakes everyone: `get` returns the remaining items, then END;
    `put` after close discards.
    """

    def __init__(self, capacity: int, policy: str) -> None:
        if policy not in ("block", "drop_oldest") or capacity < 1:
            raise ValueError(f"bad queue: capacity {capacity}, policy {policy!r}")
        self.capacity, self.policy = capacity, policy
        self._items: deque[tuple[str | None, Any]] = deque()
        self._held: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._closed = False
        self.drops: Counter[str] = Counter()

    def put(self, item: Any, stream: str | None) -> None:
        with self._changed:
            if stream is not None:
                while self.policy == "block" and self._held[stream] >= self.capacity and not self._closed:
                    self._changed.wait()
                if self.policy == "drop_oldest" and self._held[stream] >= self.capacity:
                    oldest = next(i for i, (key, _) in enumerate(self._items) if key == stream)
                    del self._items[oldest]
                    self._held[stream] -= 1
                    self.drops[stream] += 1
            if self._closed:
                return
            if stream is not None:
                self._held[stream] += 1
            self._items.append((stream, item))
            self._changed.notify_all()

    def get(self, timeout: float | None = None) -> Any:
        """The next item; None after `timeout` seconds without one; END once closed and empty."""
        with self._changed:
            if not self._items and not self._closed:
                self._changed.wait(timeout)
            if not self._items:
                return END if self._closed else None
            stream, item = self._items.popleft()
            if stream is not None:
                self._held[stream] -= 1
            self._changed.notify_all()
            return item

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def drop_counts(self) -> dict[str, int]:
        with self._changed:
            return dict(self.drops)
