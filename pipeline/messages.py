"""The monitor's messages: what goes out on ZeroMQ (multipart [topic, JSON payload]) and into the JSONL audit.

Three kinds, told apart by the `type` field and the topic (subscribers filter by topic prefix):

- `alert.<stream>`, type "frame": one per scored frame.
  v, type, stream, seq (per stream, +1 per message, from 0), frame (index in the source since it was opened),
  pts (s), t_capture, t_publish (unix s), pred, prob, detector (the score's name: relevance-ensemble,
  relevance-knn, relevance-mahalanobis or nero), score, threshold (of that detector), ood (unusable input,
  or score > threshold), reason (why ood: "score" or "quality:dark|bright|uniform|noise|blur"; null when in
  distribution), alert (after the temporal rule), explain (of that score: its top neurons and, for the
  relevance detectors, its parts and the nearest training window; for NERO the nearest centroid and the
  score's terms; docs/EXPLAIN.md). A number that is not finite is sent as null (a NaN score counts as ood).
- `event.<stream>`, type "event": event = start | stop | error | reconnecting | alert_on | alert_off, with t,
  last_seq (seq of the stream's latest frame message, -1 before the first) and details per event.
- `heartbeat`, type "heartbeat": every second: t, uptime_s, and per stream its state, last_seq, frames and
  drops.
- `explain.<stream>`, type "explain" (`nero live --explain`): multipart [topic, JSON header, PNG]; the header
  holds stream, seq (of the frame message the heatmap belongs to), seconds (heatmap time) and
  conservation_error (pipeline.explain.heatmap.Heatmap).

The JSONL audit holds the frame and event objects, byte for byte as published, one per line; heartbeats are
liveness, not audit, and go out on ZeroMQ only.
"""

from __future__ import annotations

import json
import math
from typing import Any

SCHEMA_VERSION = 1
HEARTBEAT_TOPIC = "heartbeat"
TOP_NEURONS = 5   # deviating neurons a frame's `explain` field lists


def frame_topic(stream: str) -> str:
    return f"alert.{stream}"


def event_topic(stream: str) -> str:
    return f"event.{stream}"


def explain_topic(stream: str) -> str:
    return f"explain.{stream}"


def run_topics(streams: list[str]) -> list[str]:
    """Every topic a run over `streams` publishes on (a subscription matching none of them is not applied)."""
    return [HEARTBEAT_TOPIC] + [topic(stream) for stream in streams
                                for topic in (frame_topic, event_topic, explain_topic)]


def topic_of(message: dict[str, Any]) -> str:
    """The topic a frame, event or heartbeat message is published on."""
    kind = message["type"]
    if kind == "heartbeat":
        return HEARTBEAT_TOPIC
    return frame_topic(message["stream"]) if kind == "frame" else event_topic(message["stream"])


def number(value: float, digits: int = 6) -> float | None:
    """Rounded; None (JSON null) for NaN and infinity, which JSON cannot carry."""
    return round(value, digits) if math.isfinite(value) else None


def frame_message(*, stream: str, seq: int, frame: int, pts: float, t_capture: float, t_publish: float,
                  pred: str, prob: float, detector: str, score: float, threshold: float, ood: bool,
                  reason: str | None, alert: bool, explain: dict) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION, "type": "frame", "stream": stream, "seq": seq, "frame": frame,
        "pts": round(pts, 6), "t_capture": round(t_capture, 6), "t_publish": round(t_publish, 6),
        "pred": pred, "prob": number(prob), "detector": detector, "score": number(score),
        "threshold": number(threshold),
        "ood": ood, "reason": reason, "alert": alert, "explain": explain,
    }


def event_message(stream: str, event: str, last_seq: int, t: float, **details: Any) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "type": "event", "stream": stream, "event": event, "t": round(t, 6),
            "last_seq": last_seq, **details}


def heartbeat_message(t: float, uptime_s: float, streams: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "type": "heartbeat", "t": round(t, 6), "uptime_s": round(uptime_s, 3),
            "streams": streams}


def explain_parts(stream: str, seq: int, seconds: float, conservation_error: float, png: bytes) -> list[bytes]:
    """[topic, JSON header, PNG] of a heatmap, as ZeroMQ multipart frames."""
    header = {"v": SCHEMA_VERSION, "type": "explain", "stream": stream, "seq": seq,
              "seconds": round(seconds, 4), "conservation_error": conservation_error}
    return [explain_topic(stream).encode(), encode(header).encode(), png]


def encode(message: dict[str, Any]) -> str:
    """Compact JSON, one line (the audit writes it as is, ZeroMQ sends its UTF-8 bytes); strict: no NaN."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)
