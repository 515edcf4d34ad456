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


FRAME_4K = 3840 * 2160 * 3    # bytes of one 4K RGB frame


def test_large_frames_fill_the_queue_by_bytes_before_frames():
    """100 frames of 4K once took the process to 5.1 GB: the byte limit holds 10 of them, whatever the count."""
    live = StageQueue(100, "drop_oldest", max_bytes=10 * FRAME_4K)
    for index in range(100):
        live.put(index, "cam", FRAME_4K)
    assert len(live) == 10 and live.held_bytes() == 10 * FRAME_4K and live.drop_counts() == {"cam": 90}
    assert [live.get(0) for _ in range(10)] == list(range(90, 100))     # the newest kept, in order
    small = StageQueue(100, "drop_oldest", max_bytes=10 * FRAME_4K)
    for index in range(100):
        small.put(index, "cam", 224 * 224 * 3)                            # small frames: the count limits
    assert len(small) == 100 and small.drop_counts() == {}


def test_a_frame_larger_than_the_byte_limit_still_passes_alone():
    replay = StageQueue(64, "block", max_bytes=FRAME_4K // 2)
    replay.put("4K", "cam", FRAME_4K)                                     # admitted: nothing else is held
    waiting = threading.Thread(target=replay.put, args=("next", "cam", FRAME_4K))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive()                                             # the decoder waits for room
    assert replay.get(1) == "4K"
    waiting.join(5)
    assert not waiting.is_alive() and replay.get(1) == "next"
