"""The monitor's messages: what goes out on ZeroMQ (multipart [topic, JSON payload]) and into the JSONL audit.

Three kinds, told apart by the `type` field and the topic (subscribers filter by topic prefix):

- `alert.<stream>`, type "frame": one per scored frame. v, type, stream, seq (per stream, +1 per message, from
  0), frame (index in the source since it was opened), pts (s), t_capture, t_publish (unix s), pred, prob,
  detector (the score's name: relevance-patch, relevance-ensemble, relevance-knn, relevance-mahalanobis or
  nero), score, threshold (of that detector), alert_threshold (what the temporal rule counts frames over: the
  operating point), ood (unusable input, or score > threshold), reason (why ood: "score" or
  "quality:dark|bright|uniform|noise|blur"; null when in distribution), alert (after the temporal rule),
  explain (of that score: its top neurons and, for the relevance detectors, its parts, the nearest training
  window and, for relevance-patch, the patches farthest out; for NERO the nearest centroid and the score's
  terms; docs/EXPLAIN.md). A number that is not finite is sent as null (a NaN score counts as ood).
- `event.<stream>`, type "event": event = start | stop | error | reconnecting | alert_on | alert_off |
  realtime (live and --realtime: the monitor fell behind its sources, or caught up), with t,
  last_seq (seq of the stream's latest frame message, -1 before the first) and details per event.
- `heartbeat`, type "heartbeat": every second: t, uptime_s, and per stream its state, last_seq, frames and
  drops.
- `explain.<stream>`, type "explain" (`nero live --explain`): multipart [topic, JSON header, PNG]; the header
  holds stream, seq (of the frame message the heatmap belongs to), seconds (heatmap time) and
  conservation_error (pipeline.explain.heatmap.Heatmap).
- `explain.<stream>`, type "nearest": on each alert_on of a detector that names the nearest training window,
  multipart [topic, JSON header, JPEG]: that window's thumbnail from the artifact (stream, seq, window, class).
- `hub`, type "hub" (`nero hub` only): the hub's own heartbeat: t, uptime_s, monitors (connected now).
- `preview.<stream>`, type "preview" (`publish.preview_fps`, off by default): multipart [topic, JSON header,
  JPEG], a small picture of what the model sees, a few times a second (stream, seq, width, height).

Each kind's fields are written down once, as the TypedDicts below: the functions that build the messages
return them, and docs/schema/ is generated from them (scripts/make_schema.py), so what display builders code
against is what the monitor sends (tests/pipeline/test_messages.py validates a real replay against it).

The JSONL audit holds the frame and event objects, byte for byte as published, one per line; heartbeats are
liveness, not audit, and go out on ZeroMQ only.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal, TypedDict

SCHEMA_VERSION = 1
HEARTBEAT_TOPIC = "heartbeat"
HUB_TOPIC = "hub"
TOP_NEURONS = 5   # deviating neurons a frame's `explain` field lists
TOP_PATCHES = 3   # and the patches farthest out (relevance-patch)


class _ExplanationNeurons(TypedDict):
    neurons: list[list[float | None]]   # [neuron index, its share of the score (relevance) or deviation (NERO)]


class Explanation(_ExplanationNeurons, total=False):
    """Why the frame scored as it did (pipeline/explain/field.py, docs/EXPLAIN.md); which keys depend on the
    detector: relevance detectors give parts and the nearest training window, NERO its terms."""

    parts: dict[str, float | None]   # relevance-ensemble, relevance-patch: its calibrated parts
    patches: list[list[float | None]]   # relevance-patch: [patch index on the 7 x 7 grid (row by row from the
    # top left), its share of the patch part] for the TOP_PATCHES patches farthest from in-distribution ones
    nearest: str                     # relevance: the nearest window's class; NERO: the nearest centroid's
    window: str                      # the nearest training window's id ("bank/..." when unlabelled)
    window_row: int                  # its row in the artifact's bank (and thumbnail mosaic)
    distance: float | None           # NERO's terms: score = (distance + bias_term) * rho
    bias_term: float | None
    rho: float | None
    distance_share: float | None


class FrameMessage(TypedDict):
    v: int
    type: Literal["frame"]
    stream: str
    seq: int                 # per stream, +1 per frame message from 0
    frame: int               # index in the source since it was opened
    pts: float               # s
    t_capture: float         # unix s: the frame left the decoder (a paced file: its presentation moment)
    t_publish: float         # unix s
    pred: str
    prob: float | None
    detector: str            # which score: relevance-patch, relevance-knn, relevance-ensemble, ... or nero
    score: float | None      # null: not finite (counts as ood)
    threshold: float | None  # the detector's per-frame threshold: ood = score > threshold
    alert_threshold: float | None   # what the temporal rule counts frames over (the operating point)
    ood: bool
    reason: str | None       # why ood: "score" or "quality:dark|bright|uniform|noise|blur"
    alert: bool              # after the temporal rule
    explain: Explanation


class _EventBase(TypedDict):
    v: int
    type: Literal["event"]
    stream: str
    event: Literal["start", "stop", "error", "reconnecting", "alert_on", "alert_off", "realtime"]
    t: float
    last_seq: int            # seq of the stream's latest frame message, -1 before the first


class EventMessage(_EventBase, total=False):
    """The details each event adds: start (source_kind .. reader), stop (reason), error (message),
    reconnecting (reason, retry_in_s), alert_on/alert_off (frame .. explain, from the frame that switched),
    realtime (kept, fps, source_fps, p99_ms, message: real time lost, with its likely cause, or kept again)."""

    source_kind: str
    codec: str | None
    width: int
    height: int
    fps: float | None
    frames: int | None
    hwaccel: bool
    zero_copy: bool        # frames stayed in GPU memory (NVDEC to the model, pipeline/media/yuv.py)
    reader: str
    reason: str | None
    message: str
    retry_in_s: float
    frame: int
    pts: float
    detector: str
    score: float | None
    threshold: float | None
    alert_threshold: float | None
    explain: Explanation
    kept: bool
    source_fps: float | None
    p99_ms: float | None


class StreamHealth(TypedDict):
    state: Literal["starting", "running", "reconnecting", "stopped"]
    last_seq: int
    frames: int
    drops: int
    alert: bool


class HeartbeatMessage(TypedDict):
    v: int
    type: Literal["heartbeat"]
    t: float
    uptime_s: float
    streams: dict[str, StreamHealth]


class ExplainHeader(TypedDict):
    """The JSON part of [topic, header, PNG] on explain.<stream>."""

    v: int
    type: Literal["explain"]
    stream: str
    seq: int                 # of the frame message that turned the alert on
    seconds: float           # heatmap and PNG time in the worker
    conservation_error: float


class NearestHeader(TypedDict):
    """The JSON part of [topic, header, JPEG] on explain.<stream>: the nearest training window's thumbnail."""

    v: int
    type: Literal["nearest"]
    stream: str
    seq: int                 # of the frame message that turned the alert on
    window: str
    class_name: str          # "polyp", "mucosa"; "<class>, as predicted: unlabelled" for a bank window


class PreviewHeader(TypedDict):
    """The JSON part of [topic, header, JPEG] on preview.<stream>."""

    v: int
    type: Literal["preview"]
    stream: str
    seq: int                 # of the latest frame message of the stream when the picture was taken
    width: int
    height: int


class HubMessage(TypedDict):
    """`nero hub`'s own heartbeat."""

    v: int
    type: Literal["hub"]
    t: float
    uptime_s: float
    monitors: int            # monitors connected to the hub now


MESSAGE_KINDS: dict[str, type] = {
    "frame": FrameMessage, "event": EventMessage, "heartbeat": HeartbeatMessage, "explain": ExplainHeader,
    "nearest": NearestHeader, "preview": PreviewHeader, "hub": HubMessage}


def frame_topic(stream: str) -> str:
    return f"alert.{stream}"


def event_topic(stream: str) -> str:
    return f"event.{stream}"


def explain_topic(stream: str) -> str:
    return f"explain.{stream}"


def preview_topic(stream: str) -> str:
    return f"preview.{stream}"


def run_topics(streams: list[str]) -> list[str]:
    """Every topic a run over `streams` publishes on (a subscription matching none of them is not applied)."""
    return [HEARTBEAT_TOPIC] + [topic(stream) for stream in streams
                                for topic in (frame_topic, event_topic, explain_topic, preview_topic)]


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
                  reason: str | None, alert: bool, explain: Explanation,
                  alert_threshold: float | None = None) -> FrameMessage:
    """`alert_threshold` None: the temporal rule counts frames over `threshold` itself."""
    return {
        "v": SCHEMA_VERSION, "type": "frame", "stream": stream, "seq": seq, "frame": frame,
        "pts": round(pts, 6), "t_capture": round(t_capture, 6), "t_publish": round(t_publish, 6),
        "pred": pred, "prob": number(prob), "detector": detector, "score": number(score),
        "threshold": number(threshold),
        "alert_threshold": number(threshold if alert_threshold is None else alert_threshold),
        "ood": ood, "reason": reason, "alert": alert, "explain": explain,
    }


def event_message(stream: str, event: str, last_seq: int, t: float, **details: Any) -> EventMessage:
    return {"v": SCHEMA_VERSION, "type": "event", "stream": stream, "event": event, "t": round(t, 6),
            "last_seq": last_seq, **details}


def heartbeat_message(t: float, uptime_s: float, streams: dict[str, StreamHealth]) -> HeartbeatMessage:
    return {"v": SCHEMA_VERSION, "type": "heartbeat", "t": round(t, 6), "uptime_s": round(uptime_s, 3),
            "streams": streams}


def hub_message(t: float, uptime_s: float, monitors: int) -> HubMessage:
    return {"v": SCHEMA_VERSION, "type": "hub", "t": round(t, 6), "uptime_s": round(uptime_s, 3),
            "monitors": monitors}


def explain_parts(stream: str, seq: int, seconds: float, conservation_error: float, png: bytes) -> list[bytes]:
    """[topic, JSON header, PNG] of a heatmap, as ZeroMQ multipart frames."""
    header: ExplainHeader = {"v": SCHEMA_VERSION, "type": "explain", "stream": stream, "seq": seq,
                             "seconds": round(seconds, 4), "conservation_error": conservation_error}
    return [explain_topic(stream).encode(), encode(header).encode(), png]


def nearest_parts(stream: str, seq: int, window: str, class_name: str, jpeg: bytes) -> list[bytes]:
    """[topic, JSON header, JPEG] of the nearest training window's thumbnail, as ZeroMQ multipart frames."""
    header: NearestHeader = {"v": SCHEMA_VERSION, "type": "nearest", "stream": stream, "seq": seq,
                             "window": window, "class_name": class_name}
    return [explain_topic(stream).encode(), encode(header).encode(), jpeg]


def preview_parts(stream: str, seq: int, width: int, height: int, jpeg: bytes) -> list[bytes]:
    """[topic, JSON header, JPEG] of a preview picture, as ZeroMQ multipart frames."""
    header: PreviewHeader = {"v": SCHEMA_VERSION, "type": "preview", "stream": stream, "seq": seq,
                             "width": width, "height": height}
    return [preview_topic(stream).encode(), encode(header).encode(), jpeg]


def encode(message: Any) -> str:
    """Compact JSON, one line (the audit writes it as is, ZeroMQ sends its UTF-8 bytes); strict: no NaN."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)
