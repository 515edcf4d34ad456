"""AlertSubscriber on a real publisher: messages as dicts, gaps reported, late joiners start clean."""

import time

import pytest

from pipeline import messages
from pipeline.client import AlertSubscriber, Gap
from stages.publish import Publisher


@pytest.fixture
def publisher():
    publisher = Publisher("tcp://127.0.0.1:*", linger_s=0)
    yield publisher
    publisher.close()


def frame(stream: str, seq: int) -> tuple[str, str]:
    message = messages.frame_message(stream=stream, seq=seq, frame=seq, pts=seq / 25, t_capture=0.0,
                                     t_publish=0.0, pred="mucosa", detector="relevance-knn", prob=0.9, score=0.1,
                                     threshold=1.0, ood=False, reason=None, alert=False, explain={})
    return messages.frame_topic(stream), messages.encode(message)


def connected(publisher: Publisher, **kwargs) -> AlertSubscriber:
    subscriber = AlertSubscriber(publisher.endpoint, **kwargs)
    deadline = time.monotonic() + 5
    while not publisher.wait_for_subscribers(publisher.subscriptions + 1, timeout_s=0.1):
        assert time.monotonic() < deadline, "subscription did not arrive"
    return subscriber


def test_gaps_are_detected_per_stream_and_reported(publisher):
    seen: list[Gap] = []
    with connected(publisher, on_gap=seen.append) as subscriber:
        for stream, seq in [("a", 0), ("a", 1), ("b", 0), ("a", 4), ("b", 1), ("a", 5)]:
            publisher.try_send(*frame(stream, seq))
        received = [subscriber.receive(timeout_s=5) for _ in range(6)]
        assert [(m["stream"], m["seq"]) for m in received] == [("a", 0), ("a", 1), ("b", 0), ("a", 4),
                                                                ("b", 1), ("a", 5)]
        assert seen == subscriber.gaps == [Gap("a", 2, 4)]
        assert subscriber.missing == 2
        assert subscriber.last_topic == "alert.a" and b'"seq":5' in subscriber.last_payload


def test_late_joiner_starts_at_the_current_sequence_and_restart_is_no_gap(publisher):
    with connected(publisher) as subscriber:
        for seq in (57, 58, 0, 1):        # joined at 57; then the monitor restarted
            publisher.try_send(*frame("cam", seq))
        assert [subscriber.receive(timeout_s=5)["seq"] for _ in range(4)] == [57, 58, 0, 1]
        assert subscriber.gaps == []


def test_topic_filter_and_timeout(publisher):
    with connected(publisher, topics=["event."]) as subscriber:
        publisher.try_send(*frame("cam", 0))
        publisher.try_send(messages.event_topic("cam"),
                           messages.encode(messages.event_message("cam", "alert_on", 0, 0.0)))
        message = subscriber.receive(timeout_s=5)
        assert message["type"] == "event" and message["event"] == "alert_on"
        assert subscriber.receive(timeout_s=0.05) is None


def test_explain_messages_carry_their_png(publisher):
    with connected(publisher) as subscriber:
        header = b'{"v": 1, "type": "explain", "stream": "cam", "seq": 7}'
        publisher.try_send_parts([b"explain.cam", header, b"\x89PNG..."])
        publisher.try_send(*frame("cam", 0))
        explained = subscriber.receive(timeout_s=5)
        assert (explained["seq"], explained["png"]) == (7, b"\x89PNG...")
        assert subscriber.receive(timeout_s=5)["type"] == "frame"


def test_bad_endpoint_is_a_user_error():
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="cannot connect to garbage"):
        AlertSubscriber("garbage")


def test_a_display_that_imports_the_subscriber_needs_neither_torch_nor_faiss():
    import subprocess
    import sys

    probe = ("import sys\nfrom pipeline import AlertSubscriber\n"
             "print(','.join(m for m in ('torch', 'faiss', 'numpy', 'cv2') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr
