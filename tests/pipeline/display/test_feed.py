"""The display's side of the wire: a monitor's messages as the page receives them, and what a browser that
connects late is shown."""

from __future__ import annotations

import base64

from pipeline.display.feed import page_message
from pipeline.display.server import HISTORY_S, History

ENDPOINT = "tcp://127.0.0.1:5556"


def frame(seq: int, t: float, alert: bool = False) -> dict:
    return {"v": 1, "type": "frame", "stream": "cam", "seq": seq, "t_publish": t, "score": 0.5, "alert": alert,
            "explain": {"neurons": [[1, 0.2]]}, "endpoint": ENDPOINT}


def test_frames_travel_without_their_explanation_and_pictures_as_data_urls():
    message = page_message(ENDPOINT, {k: v for k, v in frame(3, 10.0).items() if k != "endpoint"})
    assert "explain" not in message and message["seq"] == 3 and message["endpoint"] == ENDPOINT
    png = b"\x89PNG fake bytes"
    heatmap = page_message(ENDPOINT, {"type": "explain", "stream": "cam", "seq": 3, "png": png})
    assert heatmap["picture"] == "data:image/png;base64," + base64.b64encode(png).decode() and "png" not in heatmap
    thumbnail = page_message(ENDPOINT, {"type": "nearest", "stream": "cam", "seq": 3, "png": b"jpeg"})
    assert thumbnail["picture"].startswith("data:image/jpeg;base64,")
    event = {"type": "event", "stream": "cam", "event": "alert_on", "explain": {"neurons": []}}
    assert page_message(ENDPOINT, event)["explain"] == {"neurons": []}   # an alert keeps its explanation


def test_a_late_browser_gets_the_last_minute_signals_first_and_pictures_after_their_alert():
    history = History()
    history.add({"type": "signal", "endpoint": ENDPOINT, "state": "receiving", "t": 0.0})
    for seq in range(100):
        history.add(frame(seq, float(seq)))
    history.add({"type": "nearest", "endpoint": ENDPOINT, "stream": "cam", "seq": 99, "t": 99.0})
    history.add({"type": "event", "endpoint": ENDPOINT, "stream": "cam", "event": "alert_on", "t": 99.0})
    history.add({"type": "heartbeat", "endpoint": ENDPOINT, "t": 99.5, "streams": {}})
    history.add({"type": "heartbeat", "endpoint": ENDPOINT, "t": 100.5, "streams": {}})
    shown = history.snapshot()
    assert shown[0]["type"] == "signal"
    frames = [m["seq"] for m in shown if m["type"] == "frame"]
    assert frames == list(range(100 - int(HISTORY_S) - 1, 100))       # the last minute, in order
    kinds = [m["type"] for m in shown]
    assert kinds.index("event") < kinds.index("nearest")            # the picture finds its alert
    assert [m["t"] for m in shown if m["type"] == "heartbeat"] == [100.5]   # only the latest
