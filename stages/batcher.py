"""Batcher stage: group frames into batches of up to `max_batch`, holding none longer than `max_wait_s`.

Input:  items one at a time (`add`) with the time each arrived; items of several streams may share a batch.
Output: lists of items in arrival order, returned by `add` when a batch is full, by `due` when its first item
        has waited `max_wait_s`, and by `flush` at the end of input.

It owns no clock and no queue: the caller passes the time and asks `time_left` how long it may wait for the
next item, so the batching rule is tested without threads or sleeps.
"""

from __future__ import annotations

from typing import Generic, TypeVar

Item = TypeVar("Item")


class Batcher(Generic[Item]):
    def __init__(self, max_batch: int, max_wait_s: float) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"need max_batch >= 1 and max_wait_s >= 0, got {max_batch} and {max_wait_s}")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: list[Item] = []
        self._deadline = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, item: Item, now: float) -> list[Item] | None:
        """Queue one item; the full batch when this item completes one."""
        if not self._pending:
            self._deadline = now + self.max_wait_s
        self._pending.append(item)
        return self.flush() if len(self._pending) >= self.max_batch else None

    def due(self, now: float) -> list[Item] | None:
        """The pending batch if its first item has waited long enough."""
        return self.flush() if self._pending and now >= self._deadline else None

    def time_left(self, now: float) -> float | None:
        """Seconds until the pending batch is due (0 if overdue); None when nothing is pending."""
        return max(0.0, self._deadline - now) if self._pending else None

    def flush(self) -> list[Item] | None:
        """Whatever is pending, now."""
        batch, self._pending = self._pending, []
        return batch or None
