"""Publish: real ZeroMQ on loopback; subscriptions are seen; lossless mode refuses rather than drops."""

import time

import pytest
import zmq

from pipeline.errors import UserError
from stages.publish import Publisher


def subscriber(endpoint: str, topic: str = "", rcvhwm: int = 1000) -> zmq.Socket:
    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.setsockopt(zmq.RCVHWM, rcvhwm)
    socket.setsockopt(zmq.RCVBUF, 4096)   # small kernel buffers: a stalled reader fills up quickly
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt_string(zmq.SUBSCRIBE, topic)
    socket.connect(endpoint)
    return socket


def test_binds_a_free_port_and_sees_subscriptions_arrive():
    publisher = Publisher("tcp://127.0.0.1:*")
    assert publisher.endpoint.startswith("tcp://127.0.0.1:") and not publisher.endpoint.endswith("*")
    assert not publisher.wait_for_subscribers(1, timeout_s=0.05)
    first, second = subscriber(publisher.endpoint, "alert."), subscriber(publisher.endpoint, "alert.")
    deadline = time.monotonic() + 5
    while not publisher.wait_for_subscribers(2, timeout_s=0.1):
        assert time.monotonic() < deadline, "subscriptions did not arrive"
    assert publisher.try_send("alert.cam", '{"seq":0}')
    assert first.poll(5000) and first.recv_multipart() == [b"alert.cam", b'{"seq":0}']
    assert second.poll(5000) and second.recv_multipart() == [b"alert.cam", b'{"seq":0}']
    first.close()
    second.close()
    publisher.close()


def wait_subscribed(publisher: Publisher) -> None:
    deadline = time.monotonic() + 5
    while not publisher.wait_for_subscribers(1, timeout_s=0.1):
        assert time.monotonic() < deadline


def test_lossless_mode_refuses_when_a_subscriber_stalls_and_loses_nothing():
    publisher = Publisher("tcp://127.0.0.1:*", high_water_mark=10, lossless=True)
    publisher.socket.setsockopt(zmq.SNDBUF, 4096)
    stalled = subscriber(publisher.endpoint, rcvhwm=10)
    wait_subscribed(publisher)
    sent, refused_since, padding = 0, None, " " * 4000
    while refused_since is None or time.monotonic() - refused_since < 0.3:  # refused for 0.3 s in a row
        if publisher.try_send("alert.cam", f"{sent}{padding}"):
            sent, refused_since = sent + 1, None
        else:
            refused_since = refused_since or time.monotonic()
        assert sent < 1_000_000, "never refused"
    received = [int(stalled.recv_multipart()[1]) for _ in range(sent)]      # every message, in order
    assert received == list(range(sent))
    deadline = time.monotonic() + 5
    while not publisher.try_send("alert.cam", str(sent)):                   # reading made room again
        assert time.monotonic() < deadline
    stalled.close()
    publisher.close()


def test_lossy_mode_never_refuses():
    publisher = Publisher("tcp://127.0.0.1:*", high_water_mark=10, lossless=False, linger_s=0)
    stalled = subscriber(publisher.endpoint, rcvhwm=10)
    wait_subscribed(publisher)
    assert all(publisher.try_send("alert.cam", "x" * 1000) for _ in range(20_000))
    stalled.close()
    publisher.close()


def test_taken_endpoint_is_a_user_error():
    first = Publisher("tcp://127.0.0.1:*")
    with pytest.raises(UserError, match="cannot publish on"):
        Publisher(first.endpoint)
    first.close()


def test_only_subscriptions_that_can_match_a_topic_of_the_run_are_applied():
    publisher = Publisher("tcp://127.0.0.1:*", topics=["alert.cam", "event.cam", "heartbeat"], linger_s=0)
    everything, one_stream = subscriber(publisher.endpoint, ""), subscriber(publisher.endpoint, "alert.cam")
    bogus = subscriber(publisher.endpoint, "alert.cam-and-more")        # longer than any topic: matches nothing
    deadline = time.monotonic() + 5
    while publisher.subscriptions + publisher.ignored_subscriptions < 3:
        publisher.wait_for_subscribers(3, timeout_s=0.1)
        assert time.monotonic() < deadline, "subscriptions did not arrive"
    assert (publisher.subscriptions, publisher.ignored_subscriptions) == (2, 1)
    assert publisher.try_send("alert.cam", "{}")
    assert everything.poll(5000) and one_stream.poll(5000)
    assert not bogus.poll(200)
    for socket in (everything, one_stream, bogus):
        socket.close()
    publisher.close()
