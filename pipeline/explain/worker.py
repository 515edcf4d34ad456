"""Heatmaps for alerting frames, computed off the hot path and handed back for publishing on explain.<stream>.

The streaming runner owns one `ExplainWorker`: it `submit`s a frame that raised an alert and goes on at once;
each finished heatmap arrives at the `on_result` callback as an `ExplainResult` (PNG of the frame in grey with
its pixel relevance over it, plus the frame's stream and seq), ready to send as ZeroMQ multipart
[b"explain.<stream>", JSON header, PNG bytes].

Why a process, not a thread: one heatmap costs tens of forward passes worth of work, in Python-level zennit
hooks; in a thread it would hold the GIL against the hot path and, on CPU, use every intra-op thread. The
worker process has its own interpreter, its own copy of the model (LRP rewrites the model it runs on, see
pipeline.explain.heatmap) and `threads` torch threads (default 1), on `device` (default CPU, leaving the GPU to the
hot path).

Never delaying the hot path: `submit` never blocks. The request queue holds at most `max_pending` frames; a
frame that finds it full is dropped and counted (`stats.dropped`), so the newest alerts are explained as fast
as the worker can, and a burst of alerts costs nothing but drops. Results come back on a thread of the
owner's process; `on_result` runs there and must be quick and thread-safe (e.g. put the message on the
publisher's queue).
"""

from __future__ import annotations

import copy
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.messages import explain_parts
from pipeline.model.classifier import FeatureClassifier
from pipeline.model.preprocess import Preprocess

POLL_S = 0.2


@dataclass(frozen=True)
class ExplainResult:
    stream: str
    seq: int                    # the seq of the frame's alert message on alert.<stream>
    png: bytes                  # the frame in grey with its pixel relevance over it
    seconds: float              # heatmap and PNG time in the worker
    conservation_error: float   # see pipeline.explain.heatmap.Heatmap.conservation_error

    def multipart(self) -> list[bytes]:
        """[topic, JSON header, PNG] for a ZeroMQ PUB socket (pipeline.messages.explain_parts)."""
        return explain_parts(self.stream, self.seq, self.seconds, self.conservation_error, self.png)


@dataclass
class WorkerStats:
    submitted: int = 0   # accepted into the queue
    dropped: int = 0     # refused because the queue was full
    done: int = 0
    failed: int = 0
    last_error: str = ""


def _serve(classifier: FeatureClassifier, preprocess: Preprocess, device: str, threads: int, max_side: int,
           requests: multiprocessing.Queue, results: multiprocessing.Queue) -> None:
    """The worker process: heatmap and PNG for each request until the None sentinel."""
    from pipeline.explain.heatmap import HeatmapExplainer
    from pipeline.explain.render import encode_png, overlay

    torch.set_num_threads(threads)
    explainer = HeatmapExplainer(classifier.to(device).eval(), preprocess)
    while (request := requests.get()) is not None:
        stream, seq, frame = request
        start = time.perf_counter()
        try:
            (heatmap,) = explainer([frame])
            png = encode_png(overlay(frame, heatmap, max_side))
            seconds = time.perf_counter() - start
            results.put(ExplainResult(stream, seq, png, seconds, heatmap.conservation_error))
        except Exception as error:  # one bad frame must not end the worker; the owner counts it
            results.put((stream, seq, f"{type(error).__name__}: {error}"))
    results.put(None)


class ExplainWorker:
    """Owns the worker process and the thread that hands its results to `on_result`. Use as a context manager
    or call `start()` and `close()`."""

    def __init__(self, classifier: FeatureClassifier, preprocess: Preprocess,
                 on_result: Callable[[ExplainResult], None], max_pending: int = 2, device: str = "cpu",
                 threads: int = 1, max_side: int = 640) -> None:
        if max_pending < 1 or threads < 1:
            raise ValueError("max_pending and threads must be at least 1")
        context = multiprocessing.get_context("spawn")   # fork would copy the owner's threads and CUDA state
        self._requests = context.Queue(max_pending)
        self._results = context.Queue()
        model = copy.deepcopy(classifier).to("cpu")      # the worker's own copy; moved to `device` there
        self._process = context.Process(
            target=_serve, name="nero-explain", daemon=True,
            args=(model, preprocess, device, threads, max_side, self._requests, self._results))
        self._drain = threading.Thread(target=self._deliver, name="nero-explain-results", daemon=True)
        self.on_result = on_result
        self.stats = WorkerStats()
        self._closed = False

    def start(self) -> ExplainWorker:
        self._process.start()
        self._drain.start()
        return self

    def submit(self, stream: str, seq: int, frame: np.ndarray) -> bool:
        """Queue an H x W x 3 uint8 RGB frame; False (and counted as dropped) when the queue is full.

        The frame is copied when accepted, so the caller may reuse its buffer at once.
        """
        if self._closed:
            raise RuntimeError("submit() after close()")
        if self._requests.full():
            self.stats.dropped += 1
            return False
        try:
            self._requests.put_nowait((stream, seq, np.array(frame, dtype=np.uint8, copy=True)))
        except queue.Full:
            self.stats.dropped += 1
            return False
        self.stats.submitted += 1
        return True

    def _deliver(self) -> None:
        while True:
            try:
                result = self._results.get(timeout=POLL_S)
            except queue.Empty:
                if not self._process.is_alive():      # died without its sentinel: nothing more will come
                    self.stats.last_error = f"worker process exited with code {self._process.exitcode}"
                    return
                continue
            if result is None:
                return
            if isinstance(result, ExplainResult):
                self.stats.done += 1
                self.on_result(result)
            else:
                stream, seq, message = result
                self.stats.failed += 1
                self.stats.last_error = f"{stream} seq {seq}: {message}"

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued frames (up to `timeout` seconds), then stop; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._process.is_alive():
            try:
                self._requests.put(None, timeout=timeout)
            except queue.Full:
                self._process.terminate()
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join()
        if self._drain.is_alive():
            self._drain.join()

    def __enter__(self) -> ExplainWorker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
