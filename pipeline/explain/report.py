"""The replay report: one self-contained HTML page (images inlined, no server, no network) built after a
replay from its JSONL audit file and the video it replayed.

It shows the alerting score's timeline against its threshold with the alert intervals shaded, a table of the
intervals, and for the highest-scoring frame of each interval a thumbnail beside its pixel heatmap and the
nearest training window. When the video has a truth sidecar (VIDEO.truth.csv, pipeline.ood.truth), the
timeline gets a ground-truth band, each interval is marked true or false alarm, and the facts give the false
alarms per minute and the delay per OOD segment. Post-processing only:
`nero replay ... --report DIR` calls `write_report` when the replay ends, and `nero explain AUDIT.jsonl
--video SRC --out DIR` runs it stand-alone. Frames are found by their index in decode order, the way the
replay's source counted them (one sequential decoding pass up to the last frame needed).

The peak frames are scored again here; a score that differs from the audit's means the video is not the one
that was replayed (or the model changed), and the page says so.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.errors import UserError
from pipeline.explain.field import window_class
from pipeline.explain.heatmap import HeatmapExplainer
from pipeline.explain.render import overlay
from pipeline.media.images import encode_jpeg
from pipeline.media.video import video_frames
from pipeline.model.artifact import detector_settings
from pipeline.model.bundle import Bundle
from pipeline.ood.truth import AlertOutcome, Truth, truth_path

MAX_HEATMAPS = 30        # intervals beyond this (lowest peaks) are listed without a thumbnail
THUMBNAIL_SIDE = 360
HEATMAP_BATCH = 4
SCORE_MISMATCH = 0.02    # relative; GPU replays in reduced precision differ from a CPU rescore by far less


@dataclass
class Interval:
    """A run of consecutive frames with the (smoothed) alert on."""

    number: int
    records: list[dict]

    @property
    def peak(self) -> dict:
        return max(self.records, key=lambda record: record["score"])

    @property
    def start(self) -> dict:
        return self.records[0]

    @property
    def end(self) -> dict:
        return self.records[-1]


def read_audit(path: Path, stream: str | None = None) -> list[dict]:
    """The frame messages of one stream, in frame order (events and other streams skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UserError(f"cannot read the audit file {path}: {error.strerror}") from None
    frames: dict[str, list[dict]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path}:{number} is not a JSON line (is this a replay's audit file?)") from None
        if message.get("type") == "frame":
            frames.setdefault(message["stream"], []).append(message)
    if not frames:
        raise UserError(f"{path} holds no frame messages (is this a replay's audit file?)")
    if stream is None and len(frames) > 1:
        raise UserError(f"{path} holds several streams ({', '.join(sorted(frames))}); name one")
    records = frames.get(stream) if stream is not None else next(iter(frames.values()))
    if records is None:
        raise UserError(f"{path} has no stream {stream!r} (it has: {', '.join(sorted(frames))})")
    return sorted(records, key=lambda record: record["frame"])


def alert_intervals(records: list[dict]) -> list[Interval]:
    intervals: list[Interval] = []
    current: list[dict] = []
    for record in records + [{"alert": False}]:
        if record["alert"]:
            current.append(record)
        elif current:
            intervals.append(Interval(len(intervals) + 1, current))
            current = []
    return intervals


def frames_at(video: Path, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """RGB frames at the given decode-order indices, in one sequential pass that stops after the last."""
    wanted = set(indices)
    found: dict[int, np.ndarray] = {}
    if not wanted:
        return found
    for frame in video_frames(video):
        if frame.index in wanted:
            found[frame.index] = frame.image
            if len(found) == len(wanted):
                break
    return found


def timeline_png(records: list[dict], intervals: list[Interval], threshold: float,
                 outcome: AlertOutcome | None = None, truth: Truth | None = None,
                 alert_threshold: float | None = None) -> bytes:
    """The score against its threshold, alert intervals shaded; with truth, a band of the OOD segments
    below it, false alarms and misses marked."""
    times = np.array([record["pts"] for record in records])
    scores = np.array([record["score"] if record["score"] is not None else np.nan for record in records])
    detector = records[0].get("detector", "nero")
    figure = Figure(figsize=(12, 4.4 if truth is not None else 3.6), dpi=100, layout="constrained")
    if truth is not None:
        axis, band = figure.subplots(2, 1, sharex=True, height_ratios=[5, 1.3])
    else:
        axis, band = figure.subplots(), None
    for interval in intervals:
        axis.axvspan(interval.start["pts"], interval.end["pts"], color="#f4a6a6", alpha=0.6, linewidth=0)
        peak = interval.peak
        axis.annotate(str(interval.number), (peak["pts"], peak["score"]), textcoords="offset points",
                      xytext=(0, 5), ha="center", fontsize=8, color="#8b0000", fontweight="bold")
    axis.plot(times, scores, color="#1f3b73", linewidth=0.9, label=f"{detector} score")
    axis.axhline(threshold, color="#c00000", linestyle="--", linewidth=1.2,
                 label=f"{detector} per-frame threshold {threshold:.3g}")
    if alert_threshold is not None and alert_threshold != threshold:
        axis.axhline(alert_threshold, color="#7a0000", linestyle=":", linewidth=1.6,
                     label=f"alert threshold {alert_threshold:.3g} (the operating point)")
    axis.set_xlim(times.min(), max(times.max(), times.min() + 1e-3))
    shown = scores[np.isfinite(scores) & (scores > 0)]
    if alert_threshold is not None and shown.size:
        shown = np.r_[shown, alert_threshold]
    if detector == "nero":
        # NERO scores are positive and heavy-tailed (the demo clip spans 0.3 to 6e4): a log axis keeps both
        # the threshold region and the outliers readable. The relevance detectors' scores stay within ~0.3-3x
        # their threshold, which a linear axis shows better.
        axis.set_yscale("log")
        if shown.size:
            axis.set_ylim(min(shown.min(), threshold) / 1.5, max(shown.max(), threshold) * 2)
    axis.set_ylabel(f"{detector} score" + (" (log)" if detector == "nero" else ""))
    axis.legend(loc="best", fontsize=9)
    axis.set_title("score per frame; shaded: alert on (after the alert rule); numbers: the intervals below",
                   fontsize=10)
    if band is not None and truth is not None and outcome is not None:
        _truth_band(band, records, truth, outcome)
    (band or axis).set_xlabel("time in the video (s)")
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _truth_band(band, records: list[dict], truth: Truth, outcome: AlertOutcome) -> None:
    """Ground truth under the timeline: OOD segments (named, missed ones in red), false alarms as red marks."""
    times = [record["pts"] for record in records]   # the outcome counts in scored frames, as `records` do
    for segment in outcome.segments:
        begin, finish = times[segment.start], times[segment.end - 1]
        missed = segment.delay_s is None
        band.axvspan(begin, finish, color="#c00000" if missed else "#555555", alpha=0.8, linewidth=0)
        label = f"{segment.name}\nMISSED" if missed else f"{segment.name}\n+{segment.delay_s:.2f} s"
        band.text((begin + finish) / 2, 0.5, label, ha="center", va="center", fontsize=6.5, color="white",
                  clip_on=True, linespacing=1.1)
    for row in outcome.false_alarms:
        band.axvline(times[row], color="#ff2020", linewidth=2)
    band.set_yticks([])
    band.set_ylabel("truth", fontsize=9)
    band.set_title(f"ground truth: OOD segments (grey; +delay to the alert), red lines: false alarms "
                   f"({len(outcome.false_alarms)}, {outcome.false_alarms_per_min:.2f}/min of in-distribution "
                   f"video), red segments: missed ({len(outcome.missed)})", fontsize=9)


def thumbnail_jpeg(frame: np.ndarray, image: np.ndarray) -> bytes:
    """The frame and its heatmap overlay side by side, each THUMBNAIL_SIDE px on its longer side."""
    scale = THUMBNAIL_SIDE / max(frame.shape[:2])
    size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    gap = np.full((size[1], 6, 3), 255, np.uint8)
    return encode_jpeg(np.concatenate([small, gap, cv2.resize(image, size, interpolation=cv2.INTER_AREA)], axis=1), 88)


@dataclass
class PeakView:
    thumbnail: bytes
    rescored: float
    conservation_error: float


def explain_peaks(bundle: Bundle, video: Path, intervals: list[Interval]) -> dict[int, PeakView]:
    """Heatmap thumbnails (and a rescore) for the peaks of the MAX_HEATMAPS highest-scoring intervals."""
    chosen = sorted(intervals, key=lambda interval: -interval.peak["score"])[:MAX_HEATMAPS]
    frames = frames_at(video, [interval.peak["frame"] for interval in chosen])
    missing = [interval.peak["frame"] for interval in chosen if interval.peak["frame"] not in frames]
    if missing:
        raise UserError(f"{video} has no frame {missing[0]}: not the video this audit file was made from")
    explainer = HeatmapExplainer(bundle.classifier, bundle.preprocess)
    views: dict[int, PeakView] = {}
    for start in range(0, len(chosen), HEATMAP_BATCH):
        batch = chosen[start:start + HEATMAP_BATCH]
        images = [frames[interval.peak["frame"]] for interval in batch]
        terms = bundle.infer([torch.from_numpy(image) for image in images]).terms
        for interval, image, heatmap, score in zip(batch, images, explainer(images), terms.score.tolist(),
                                                   strict=True):
            views[interval.number] = PeakView(thumbnail_jpeg(image, overlay(image, heatmap, THUMBNAIL_SIDE)),
                                              score, heatmap.conservation_error)
    return views


def _alert_rule(bundle: Bundle) -> str:
    points = detector_settings(bundle.artifact.manifest, bundle.detector, bundle.artifact.path).get("operating_points")
    if bundle.alert_threshold is None or points is None:
        return "frames over the per-frame threshold (no false-alarm calibration)"
    return (f"{points['rule']}, alert threshold {bundle.alert_threshold:.4g}: the operating point calibrated on "
            f"{points['video_minutes']:.1f} min of in-distribution video ({points['video']})")


def _frame_rate(records: list[dict]) -> float:
    """Frames per second of the replayed video, from the frames' timestamps."""
    span = records[-1]["pts"] - records[0]["pts"]
    return (records[-1]["frame"] - records[0]["frame"]) / span if span > 0 else 25.0


def _seconds(value: float) -> str:
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)}:{seconds:05.2f}"


def _number(value: float | None, spec: str) -> str:
    """A number from the audit file; the explanation writes null for NaN/inf, shown as n/a."""
    return "n/a" if value is None else format(value, spec)


def _data_uri(data: bytes, kind: str) -> str:
    return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1a1a1a; max-width: 1280px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.facts td { padding: 2px 14px 2px 0; } .facts td:first-child { color: #555; }
table.intervals { border-collapse: collapse; width: 100%; font-size: 14px; }
table.intervals th, table.intervals td { border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: left;
  vertical-align: top; }
table.intervals th { background: #f3f3f3; }
.warn { color: #b00000; font-weight: bold; } .muted { color: #666; font-size: 13px; }
img.timeline { width: 100%; border: 1px solid #ddd; } img.thumb { max-width: 740px; }
img.window { width: 72px; vertical-align: middle; border: 1px solid #ccc; }
"""


def _explanation_html(explain: dict, bundle: Bundle) -> str:
    """The peak's `explain` field in words: NERO's terms, or a relevance detector's parts and nearest window."""
    neurons = ", ".join(f"#{n} ({_number(v, '+.3g')})" for n, v in explain.get("neurons", []))
    if "distance_share" in explain:    # NERO
        return (f"nearest centroid: {html.escape(str(explain.get('nearest', '?')))}<br>distance share "
                f"{_number(explain.get('distance_share'), '.0%')}, rho {_number(explain.get('rho'), '.3f')}<br>"
                f"neurons (deviation from the centroid): {neurons}")
    parts = ", ".join(f"{html.escape(name)} {_number(value, '.3g')}"
                      for name, value in explain.get("parts", {}).items())
    window = ""
    if "window" in explain:
        tile = bundle.thumbnail(explain["window_row"])
        picture = (f'<img class="window" src="{_data_uri(encode_jpeg(tile, 88), "jpeg")}" '
                   'alt="nearest training window">' if tile is not None else "")
        window = (f"<br>nearest training window: {html.escape(explain['window'])} "
                  f"({html.escape(window_class(explain))}) {picture}")
    return (f"parts (each over its scale): {parts}<br>" if parts else "") + \
        f"neurons (share of the score): {neurons}{window}"


def interval_row(interval: Interval, view: PeakView | None, bundle: Bundle, false_alarm: bool | None) -> str:
    """`false_alarm`: whether the interval began on in-distribution video (None when there is no truth)."""
    peak, start, end = interval.peak, interval.start, interval.end
    if view is None:
        picture = '<span class="muted">no thumbnail (only the highest peaks get one)</span>'
        check = ""
    else:
        picture = f'<img class="thumb" src="{_data_uri(view.thumbnail, "jpeg")}" alt="frame {peak["frame"]}">'
        mismatch = abs(view.rescored - peak["score"]) > SCORE_MISMATCH * max(abs(peak["score"]), 1e-9)
        check = (f'<br><span class="{"warn" if mismatch else "muted"}">rescored here: {view.rescored:.4g}'
                 f'{" - differs from the audit: is this the replayed video?" if mismatch else ""}</span>'
                 f'<br><span class="muted">heatmap conservation error {view.conservation_error:.1e}</span>')
    verdict = {None: "", True: '<br><span class="warn">FALSE ALARM</span> (began on in-distribution video)',
               False: '<br><span class="muted">true alert (began in an OOD segment)</span>'}[false_alarm]
    reason = f"<br><span class='muted'>reason: {html.escape(str(peak['reason']))}</span>" if peak.get("reason") else ""
    return (
        f"<tr><td><b>{interval.number}</b>{verdict}</td>"
        f"<td>{_seconds(start['pts'])} - {_seconds(end['pts'])}<br><span class='muted'>"
        f"frames {start['frame']}-{end['frame']} ({len(interval.records)})</span></td>"
        f"<td>{peak['score']:.4g} at {_seconds(peak['pts'])}<br><span class='muted'>frame {peak['frame']}, "
        f"{peak['score'] / peak['threshold']:.2f} x threshold</span>{reason}{check}</td>"
        f"<td>{html.escape(str(peak.get('pred', '')))} ({peak.get('prob', 0):.0%})<br><span class='muted'>"
        f"{_explanation_html(peak.get('explain', {}), bundle)}</span></td>"
        f"<td>{picture}</td></tr>"
    )


def render_html(records: list[dict], intervals: list[Interval], views: dict[int, PeakView], video: Path,
                bundle: Bundle, seconds: float, truth: Truth | None = None) -> str:
    """`truth`: the per-frame truth of `records` (Truth.at), when the video has a sidecar."""
    threshold = records[0]["threshold"]
    detector = records[0].get("detector", "nero")
    ood_share = sum(record["ood"] for record in records) / len(records)
    alert_frames = sum(len(interval.records) for interval in intervals)
    manifest = bundle.artifact.manifest
    facts = {
        "video": html.escape(str(video)), "stream": html.escape(records[0]["stream"]),
        "frames scored": f"{len(records)} ({_seconds(records[0]['pts'])} - {_seconds(records[-1]['pts'])})",
        "alerting score": html.escape(detector),
        "threshold": f"{threshold:.4g} ({html.escape(str(manifest.get('threshold_rule', '')))})",
        "frames above threshold": f"{ood_share:.1%}",
        "alert rule": html.escape(_alert_rule(bundle)),
        "alert intervals": f"{len(intervals)}, {alert_frames} frames",
        "model": html.escape(f"{bundle.arch}, classes {', '.join(bundle.class_names)}"),
        "artifact": html.escape(str(bundle.artifact.path)),
    }
    outcome = None
    if truth is not None:
        outcome = AlertOutcome.of(np.array([bool(record["alert"]) for record in records]), truth,
                                  _frame_rate(records))
        delays = ", ".join(f"{segment.name} " + ("MISSED" if segment.delay_s is None else f"{segment.delay_s:.2f} s")
                           for segment in outcome.segments)
        facts["ground truth"] = html.escape(f"{len(outcome.segments)} OOD segments, "
                                            f"{outcome.id_minutes:.2f} min of in-distribution video")
        facts["false alarms"] = (f"{len(outcome.false_alarms)} ({outcome.false_alarms_per_min:.2f} per minute of "
                                 "in-distribution video)")
        facts["delay per OOD segment"] = html.escape(delays or "none")
    row_of = {record["frame"]: row for row, record in enumerate(records)}
    rows = "\n".join(interval_row(interval, views.get(interval.number), bundle,
                                  None if truth is None else not truth.ood[row_of[interval.start["frame"]]])
                     for interval in intervals)
    table = ("<table class='intervals'><tr><th>#</th><th>when</th><th>peak score</th><th>at the peak</th>"
             f"<th>peak frame | where its relevance comes from</th></tr>{rows}</table>" if intervals
             else "<p>No alert was raised during this replay.</p>")
    timeline = _data_uri(timeline_png(records, intervals, threshold, outcome, truth, bundle.alert_threshold),
                         "png")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>NERO replay report: {html.escape(video.name)}</title>
<style>{STYLE}</style></head><body>
<h1>NERO replay report: {html.escape(video.name)}</h1>
<p class="muted">Out-of-distribution monitor: a frame scores high when the classifier's neuron relevance
lies far from what it showed on its training data. Built {time.strftime('%Y-%m-%d %H:%M')} in
{seconds:.1f} s.</p>
<table class="facts">{''.join(f'<tr><td>{k}</td><td>{v}</td></tr>' for k, v in facts.items())}</table>
<h2>Score timeline</h2><img class="timeline" src="{timeline}" alt="score timeline">
<h2>Alert intervals</h2>
<p class="muted">Thumbnails: the highest-scoring frame of the interval, and the same frame in grey with the
pixels that carry NERO's neuron relevance in yellow/red (full-network LRP; blue: against). Neurons: the
feature neurons that carry the {html.escape(detector)} score (for NERO: whose relevance deviates most from
the nearest class centroid), with their signed values; for the relevance detectors, the nearest training
window is the stored thumbnail of the training image closest to the peak frame.</p>
{table}
</body></html>
"""


def write_report(jsonl_path: str | Path, video_path: str | Path, out_dir: str | Path, bundle: Bundle,
                 stream: str | None = None) -> Path:
    """Write OUT_DIR/report.html for a replay; returns its path. `stream` picks one of several streams.

    Call it after the run has ended: the heatmaps run on `bundle.classifier` itself (see pipeline.explain.heatmap).
    """
    start = time.perf_counter()
    jsonl_path, video_path, out_dir = Path(jsonl_path), Path(video_path), Path(out_dir)
    records = read_audit(jsonl_path, stream)
    sidecar = truth_path(video_path)
    truth = Truth.read(sidecar).at([record["frame"] for record in records]) if sidecar.is_file() else None
    intervals = alert_intervals(records)
    views = explain_peaks(bundle, video_path, intervals)
    page = render_html(records, intervals, views, video_path, bundle, time.perf_counter() - start, truth)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
