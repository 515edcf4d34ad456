"""The queue between two of the runner's threads: lossless (block) or latency first (drop the oldest)."""

import threading

from pipeline.stream.queues import END, StageQueue


def test_block_policy_waits_for_room_and_close_releases():
    queue = StageQueue(capacity=2, policy="block")
    queue.put("a", "s")
    queue.put("b", "s")
    queue.put("event", None)                   # control items never count against the capacity
    blocked = threading.Thread(target=queue.put, args=("c", "s"))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()                  # full: the producer waits
    assert queue.get(0) == "a"
    blocked.join(5)
    assert not blocked.is_alive()
    assert [queue.get(0) for _ in range(3)] == ["b", "event", "c"]
    assert queue.get(0.01) is None             # empty: timeout
    stuck = threading.Thread(target=lambda: [queue.put(i, "s") for i in range(5)])
    stuck.start()
    queue.close()                              # releases a waiting producer; later puts are discarded
    stuck.join(5)
    assert not stuck.is_alive()
    assert [queue.get(0) for _ in range(3)] == [0, 1, END]


def test_drop_oldest_policy_counts_drops_per_stream_and_keeps_control_items():
    queue = StageQueue(capacity=3, policy="drop_oldest")
    queue.put("start", None)
    for i in range(7):
        queue.put(f"a{i}", "a")
    queue.put("b0", "b")
    assert queue.drop_counts() == {"a": 4}
    assert [queue.get(0) for _ in range(5)] == ["start", "a4", "a5", "a6", "b0"]
