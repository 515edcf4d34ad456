"""Side-by-side throughput of the monitor against its own ceilings, measured in one process on one clip.

Absolute frame rates on a shared machine swing from run to run; ratios between runs made seconds apart do
not. So every measurement here runs on the same frames, in the same process, in alternating rounds, and the
report states each as frames per second and as a ratio to the monitor:

    decode      PyAV decode + RGB conversion only (YUV planes on a GPU): the ceiling no pipeline on this source
                can pass
    forward     preprocess + classifier forward on frames already in memory, batched as the monitor batches
    score       forward + the detector, NERO's terms, quality guard, explanations: the forward and score
                stages one after the other, in one thread
    naive       one thread, OpenCV decode, one frame per torch forward, NERO, JSON: what a first script would do
    monitor     `nero replay` itself: threads, queues, batching, ZeroMQ publishing, JSONL audit

Each path's CPU time is measured too (the process's, all threads, per frame): the monitor cannot outrun the
frame rate at which decoding and scoring, measured apart, would keep every core busy (an estimate: in the
monitor they overlap, and a thread pool's idle spinning is partly put to use), and the report gives it with
how much of the machine the monitor used. On the 2-core CPU it said what the frame rates alone did not: the
monitor ran at 0.78x of the bare forward with a fifth of the cores idle (docs/PERFORMANCE.md).

With `streams` N > 1, one more measurement in the same rounds: N copies of the clip through one monitor,
as fast as it goes (replay, lossless) or each at the clip's own rate (`realtime`: live, file sources paced,
frames dropped when the model falls behind): aggregate frames per second, and per stream the latency from
the frame leaving its decoder to its message published (from the audit's t_capture and t_publish), p50,
p99 and p99.9, and its drops.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.media.video import Source, copy_h264
from pipeline.media.yuv import YuvImage
from pipeline.model.backend import describe_forward
from pipeline.model.bundle import Bundle
from pipeline.stream.metrics import latency_stats
from pipeline.stream.runner import Runner, RunOptions, RunSettings, StreamSpec, open_stream
from stages.forward import ForwardStage
from stages.score import ScoreStage

logger = logging.getLogger(__name__)
MEASURES = ("decode", "forward", "score", "naive", "monitor")


def trimmed_clip(source: Path, frames: int, folder: Path) -> tuple[Path, int]:
    """The first `frames` frames of `source` re-encoded (H.264) so that every measure sees the same video."""
    with av.open(str(source)) as container:
        total = container.streams.video[0].frames or 0
    if 0 < total <= frames:
        return source, total
    out_path = folder / "bench.mp4"
    return out_path, copy_h264(source, out_path, frames)


def decoded_frames(source: Source) -> list[np.ndarray | YuvImage]:
    try:
        return [frame.image for frame in source]
    finally:
        source.close()


def time_decode(source: Source) -> int:
    """Frames decoded and converted, none kept: keeping 300 1080p frames (1.9 GB) had measured the memory,
    78 fps against the decoder's 378."""
    try:
        return sum(1 for _ in source)
    finally:
        source.close()


def time_batches(step: Callable[[list], object], images: list[np.ndarray | YuvImage], batch: int) -> int:
    for start in range(0, len(images), batch):
        step(images[start:start + batch])
    return len(images)


def time_naive(bundle: Bundle, clip: Path) -> int:
    bundle = dataclasses.replace(bundle, forward=None)   # a first script runs the torch model as it is
    capture = cv2.VideoCapture(str(clip))
    count = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frame = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).unsqueeze(0)
        inference = bundle.infer(frame)
        json.dumps({"frame": count, "prob": inference.probs.max().item(), "score": inference.terms.score.item()})
        count += 1
    capture.release()
    return count


def time_monitor(bundle: Bundle, settings: RunSettings, clip: Path, folder: Path) -> tuple[int, dict]:
    spec = StreamSpec("bench", str(clip), open_stream(str(clip), "bench", settings.stream, str(bundle.device)))
    runner = Runner(bundle, [spec], RunOptions(endpoint="tcp://127.0.0.1:*", jsonl=folder / "audit.jsonl"),
                    settings)
    report = runner.run()
    return report.frames["bench"], report.metrics


def time_streams(bundle: Bundle, settings: RunSettings, clip: Path, count: int, realtime: bool,
                 folder: Path) -> tuple[int, dict]:
    """`count` copies of `clip` through one monitor: frames published, and per stream its latency and drops."""
    specs = [StreamSpec(f"s{index}", str(clip), None if realtime else
                        open_stream(str(clip), f"s{index}", settings.stream, str(bundle.device)))
             for index in range(count)]
    audit = folder / "streams.jsonl"
    audit.unlink(missing_ok=True)
    report = Runner(bundle, specs, RunOptions(live=realtime, endpoint="tcp://127.0.0.1:*", jsonl=audit),
                    settings).run()
    spans: dict[str, list[float]] = {spec.name: [] for spec in specs}
    for message in map(json.loads, audit.read_text().splitlines()):
        if message["type"] == "frame":
            spans[message["stream"]].append(message["t_publish"] - message["t_capture"])
    per_stream = {name: {**{key: value for key, value in latency_stats(np.array(values)).items()
                            if key in ("p50", "p99", "p99.9")}, "drops": report.drops.get(name, 0)}
                  for name, values in spans.items()}
    return sum(report.frames.values()), per_stream


def run_bench(bundle: Bundle, clip: Path, frames: int, rounds: int, settings: RunSettings | None = None,
              log: Callable[[str], None] = logger.info, streams: int = 1, realtime: bool = False) -> dict:
    """Measure every path `rounds` times, alternating; report the median frame rate of each."""
    if not clip.is_file():
        raise UserError(f"no such video file: {clip}")
    settings = settings or RunSettings()
    batch = settings.stream.max_batch
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip, count = trimmed_clip(clip, frames, folder)
        def opened() -> Source:    # the clip as the monitor reads it: the same frames for every measure
            return open_stream(str(clip), "bench", settings.stream, str(bundle.device))

        images = decoded_frames(opened())
        forward_stage, score_stage = ForwardStage(bundle), ScoreStage(bundle)
        forward = bundle.forward or bundle.classifier   # the bare forward of the configured backend

        def scored(chunk: list) -> object:   # the score measure: both stages, one after the other
            return score_stage(forward_stage(chunk))

        steps: dict[str, Callable[[], int]] = {
            "decode": lambda: time_decode(opened()),
            "forward": lambda: time_batches(lambda chunk: forward(bundle.preprocess(forward_stage.upload(chunk))),
                                            images, batch),
            "score": lambda: time_batches(scored, images, batch),
            "naive": lambda: time_naive(bundle, clip),
        }
        bundle.warm_up(batch, images[0].shape[:2])
        time_batches(scored, images[:batch], batch)         # warm-up: lazy initialisation, allocator
        measures = (*MEASURES, "streams") if streams > 1 else MEASURES
        fps: dict[str, list[float]] = {name: [] for name in measures}
        cpu_ms: dict[str, list[float]] = {name: [] for name in measures}
        latency: dict = {}
        per_stream: dict = {}
        for round_index in range(rounds):
            for name in measures:
                start, cpu_start = time.perf_counter(), time.process_time()
                if name == "monitor":
                    done, latency = time_monitor(bundle, settings, clip, folder)
                elif name == "streams":
                    done, per_stream = time_streams(bundle, settings, clip, streams, realtime, folder)
                else:
                    with torch.inference_mode():
                        done = steps[name]()
                if bundle.device.type == "cuda":
                    torch.cuda.synchronize()
                fps[name].append(done / (time.perf_counter() - start))
                cpu_ms[name].append(1000.0 * (time.process_time() - cpu_start) / done)
                log(f"round {round_index + 1}/{rounds}  {name:8s} {fps[name][-1]:8.1f} frames/s")
    medians = {name: statistics.median(values) for name, values in fps.items()}
    cpu = {name: statistics.median(values) for name, values in cpu_ms.items()}
    cores = usable_cores()
    result = {
        "frames": count, "rounds": rounds, "batch": batch, "device": describe_device(bundle.device),
        "forward": describe_forward(bundle.forward or bundle.classifier), "detector": bundle.detector,
        "threads": torch.get_num_threads(), "fps": {name: medians[name] for name in MEASURES},
        "fps_all": fps, "monitor_ratio": {name: medians["monitor"] / medians[name] for name in MEASURES},
        "monitor_latency_ms": latency.get("latency_ms", latency),
        "cpu_ms_per_frame": {name: cpu[name] for name in MEASURES}, "cores": cores,
        # the frame rate at which decoding and scoring alone would keep every core busy
        "cpu_ceiling_fps": 1000.0 * cores / (cpu["decode"] + cpu["score"]),
        "monitor_cpu_use": medians["monitor"] * cpu["monitor"] / (1000.0 * cores),
        # the forward's share of the CPU time a frame costs to decode and score apart: about what the monitor
        # reaches against the bare forward when both keep the cores as busy (an estimate: in the monitor the
        # two overlap; on the 2-core CPU 0.81 against 0.78 measured, and 0.77 against 0.82)
        "forward_share": cpu["forward"] / (cpu["decode"] + cpu["score"]),
    }
    if streams > 1:
        result["streams"] = {"count": streams, "realtime": realtime, "fps": medians["streams"],
                             "per_stream_ms": per_stream}
    return result


def describe_device(device: torch.device) -> str:
    """The card, or the CPU's model and the threads the model runs on: absolute frame rates mean nothing
    without it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {usable_cores()} cores, {torch.get_num_threads()} threads"


def usable_cores() -> int:
    """The cores this process may run on (a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:        # not on Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


BOUND_BY_CPU = 0.9   # of the cores busy: above it, the monitor can only go faster with less work a frame


def cpu_verdict(use: float) -> str:
    """What the monitor's share of the cores says about where its time goes."""
    if use >= BOUND_BY_CPU:
        return ("the monitor is bound by the CPU: only less work a frame makes it faster (model.precision: "
                "int8 with an artifact fitted for it, or bfloat16 where the CPU has it; a smaller model, fewer "
                "pixels to decode, or a GPU)")
    return (f"the monitor left {100 * (1 - use):.0f}% of the cores idle: it waited on something other than the "
            "CPU (a slow disk or subscriber, a full queue); the per-stage latencies of `nero replay "
            "--metrics-json` show where")


def format_bench(result: dict) -> str:
    lines = [f"{result['frames']} frames, batch {result['batch']}, {result['device']}, {result['forward']}, "
             f"median of {result['rounds']} rounds",
             f"{'path':10s} {'frames/s':>10s} {'monitor / path':>16s} {'CPU ms/frame':>14s}"]
    for name in MEASURES:
        lines.append(f"{name:10s} {result['fps'][name]:10.1f} {result['monitor_ratio'][name]:15.2f}x "
                     f"{result['cpu_ms_per_frame'][name]:14.2f}")
    cpu = result["cpu_ms_per_frame"]
    lines.append(f"CPU: decode + score measured apart {cpu['decode'] + cpu['score']:.2f} ms a frame "
                 f"({result['cpu_ceiling_fps']:.1f} frames/s on {result['cores']} cores); the monitor "
                 f"{cpu['monitor']:.2f} ms a frame, {100 * result['monitor_cpu_use']:.0f}% of the cores busy")
    if result["device"].startswith(cpu_model()):     # on a GPU host the cores only feed the card
        lines.append(f"of those {cpu['decode'] + cpu['score']:.2f} ms the bare forward takes {cpu['forward']:.2f}, "
                     f"decoding {cpu['decode']:.2f}, and the score stage's own work ({result['detector']}, "
                     f"NERO's terms, the quality guard, explanations) {cpu['score'] - cpu['forward']:.2f}: with the "
                     f"cores as busy, that puts the monitor near {result['forward_share']:.2f}x the bare forward "
                     "on this machine")
        lines.append(cpu_verdict(result["monitor_cpu_use"]))
    streams = result.get("streams")
    if streams:
        how = "each at the clip's rate" if streams["realtime"] else "as fast as possible"
        lines.append(f"{streams['count']} streams ({how}): {streams['fps']:.1f} frames/s in all, "
                     f"{streams['fps'] / result['fps']['forward']:.2f}x the bare forward; decoded -> published (ms):")
        for name, figures in streams["per_stream_ms"].items():
            lines.append(f"  {name}: p50 {figures.get('p50', 0):.0f}, p99 {figures.get('p99', 0):.0f}, "
                         f"p99.9 {figures.get('p99.9', 0):.0f}, dropped {figures['drops']}")
    return "\n".join(lines)
