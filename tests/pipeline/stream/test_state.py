"""What the publish side knows of each stream, without threads: seq, alert counts, events, heartbeats."""

import numpy as np

from pipeline.media.video import Frame
from pipeline.ood.alert import Decision
from pipeline.stream.state import StreamStates
from stages.score import Scored


def frame(stream: str, index: int) -> Frame:
    return Frame(stream, index, index / 25, 1000.0 + index, 0.0, np.zeros((2, 2, 3), np.uint8))


def scored(score: float) -> Scored:
    return Scored("polyp", 0.9, score, {"nearest": "polyp"})


def test_seq_counts_frame_messages_per_stream_from_zero():
    states = StreamStates(["a", "b"], "relevance-knn")
    seqs = [states.frame_message(frame(name, i), scored(0.1), Decision(False, False, False), 1.0, 5.0)["seq"]
            for i, name in enumerate(["a", "a", "b", "a"])]
    assert seqs == [0, 1, 0, 2] and states.frames() == {"a": 3, "b": 1}


def test_an_alert_event_carries_the_frame_that_switched_it_and_is_counted():
    states = StreamStates(["cam"], "relevance-knn")
    states.frame_message(frame("cam", 0), scored(0.1), Decision(False, False, False), 1.0, 5.0)
    message = states.frame_message(frame("cam", 7), scored(3.0), Decision(True, True, True), 1.0, 5.0)
    event = states.alert_event(message, t=6.0)
    assert (event["event"], event["frame"], event["score"], event["threshold"]) == ("alert_on", 7, 3.0, 1.0)
    assert event["last_seq"] == 1 and event["explain"] == {"nearest": "polyp"} and states.alerts() == {"cam": 1}
    assert message["detector"] == event["detector"] == "relevance-knn"     # which score the alert is about
    off = states.frame_message(frame("cam", 8), scored(0.1), Decision(False, False, True), 1.0, 5.0)
    assert states.alert_event(off, t=7.0)["event"] == "alert_off" and states.alerts() == {"cam": 1}


def test_source_events_move_the_state_a_heartbeat_reports():
    states = StreamStates(["a", "b"], "relevance-knn")
    start = states.source_event("a", "start", {"fps": 25.0, "codec": "h264"}, t=1.0)
    assert start["event"] == "start" and start["codec"] == "h264" and start["last_seq"] == -1
    states.source_event("b", "reconnecting", {"reason": "gone", "retry_in_s": 0.5}, t=1.0)
    beat = states.heartbeat(2.0, 1.5, {"b": 3}, alert_on=lambda name: name == "a")
    assert beat["streams"]["a"] == {"state": "running", "last_seq": -1, "frames": 0, "drops": 0, "alert": True}
    assert beat["streams"]["b"]["state"] == "reconnecting" and beat["streams"]["b"]["drops"] == 3


def test_streams_that_started_and_never_said_goodbye_get_a_stop():
    states = StreamStates(["a", "b", "c"], "relevance-knn")
    states.source_event("a", "start", {}, t=1.0)
    states.source_event("b", "start", {}, t=1.0)
    states.source_event("b", "stop", {"reason": "end of stream"}, t=2.0)
    stops = states.stop_unfinished(t=3.0)
    assert [(m["stream"], m["event"], m["reason"]) for m in stops] == [("a", "stop", "stopped")]
    assert states.unfinished() == []
