"""The streaming monitor: the stage graph, its threads and queues, and what happens when a part falls behind.

    source thread per stream --[frame queue]--> score thread --[result queue]--> publish thread
    (decode, pace)            block | drop     (batch, score)    block          (alert, send, audit, annotate)

`Runner.compose()` wires this graph in one place; the stages (stages/) know nothing of threads or queues.
Decoding runs in its own thread per stream (it is the usual bottleneck), the model in one thread (one copy of
the model, batches may mix streams), and everything that talks to the outside world in one more, so a slow
disk or network never stalls the model.

Modes:
- replay: lossless. Every frame is scored and published, in order. The frame queue blocks the decoder when
  full, and the publisher waits for a subscriber that lags (backpressure) instead of dropping. --realtime
  paces the source to its timestamps; by default it runs as fast as the machine allows. A source that breaks
  ends the run with an error.
- live: latency first. When the model falls behind, the frame queue drops the stream's oldest frame, before
  batching and never inside the decoder, and counts it; ZeroMQ drops messages for a subscriber that lags,
  never blocking. A network or device source that fails or ends is reopened with exponential backoff; a file
  source (standing in for a camera) is paced to its timestamps and ends the stream when it ends.

Heatmaps (RunOptions.explain, `nero live --explain`): the publish thread hands the frame that turns a stream's
alert on to an `ExplainWorker` (a separate process, at most EXPLAIN_PENDING frames waiting, a frame that finds
them waiting is dropped and counted) and goes on at once; finished heatmaps come back on the worker's thread
into a deque that the publish thread drains on each pass and sends on explain.<stream>, since only the publish
thread may touch the socket.

Control items (`SourceEvent`: start, stop, error, reconnecting) travel through the same queues as the frames,
so each stream's events reach subscribers in order with its frames. `stop()` (SIGINT, SIGTERM) lets the
sources finish their current frame, drains both queues, sends the stop events, flushes the audit file and
closes the socket; with heatmaps on, the ones already queued are finished (up to EXPLAIN_CLOSE_S) and sent
first.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline import messages
from pipeline.bundle import Bundle
from pipeline.errors import UserError
from pipeline.explain_worker import ExplainResult, ExplainWorker
from pipeline.metrics import Metrics, format_summary
from stages.alert import AlertStage
from stages.annotate import Annotator
from stages.audit import AuditLog
from stages.batcher import Batcher
from stages.publish import Publisher
from stages.score import Scored, ScoreStage
from stages.source import Frame, Source, SourceError, open_source, source_kind

RESULT_QUEUE_BATCHES = 4   # scored batches waiting for the publish thread
STOP_GRACE_S = 2.0         # after stop(), how long a blocked subscriber may hold the replay back
RETRY_MIN_S, RETRY_MAX_S = 0.0005, 0.02   # replay: pauses between sends a lagging subscriber refused
END = object()             # what a closed and empty queue returns
EXPLAIN_PENDING = 2        # alerting frames waiting for a heatmap; more are dropped (counted), not waited for
EXPLAIN_CLOSE_S = 10.0     # at the end of a run, how long the queued heatmaps may hold the shutdown


@dataclass
class SourceEvent:
    """start | stop | error | reconnecting, from a source thread, in order with the stream's frames."""

    stream: str
    event: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoredBatch:
    frames: list[Frame]
    results: list[Scored]
    t_dispatched: float
    t_scored: float


class StageQueue:
    """A bounded FIFO between two threads, with a per-stream capacity and a policy for when it is full.

    "block": `put` waits for room (lossless). "drop_oldest": `put` never waits; it removes the stream's oldest
    queued item and counts the drop (latency first). Control items (`stream=None`) are never dropped and do
    not count against the capacity. `close()` wakes everyone: `get` returns the remaining items, then END;
    `put` after close discards.
    """

    def __init__(self, capacity: int, policy: str) -> None:
        if policy not in ("block", "drop_oldest") or capacity < 1:
            raise ValueError(f"bad queue: capacity {capacity}, policy {policy!r}")
        self.capacity, self.policy = capacity, policy
        self._items: deque[tuple[str | None, Any]] = deque()
        self._held: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._closed = False
        self.drops: Counter[str] = Counter()

    def put(self, item: Any, stream: str | None) -> None:
        with self._changed:
            if stream is not None:
                while self.policy == "block" and self._held[stream] >= self.capacity and not self._closed:
                    self._changed.wait()
                if self.policy == "drop_oldest" and self._held[stream] >= self.capacity:
                    oldest = next(i for i, (key, _) in enumerate(self._items) if key == stream)
                    del self._items[oldest]
                    self._held[stream] -= 1
                    self.drops[stream] += 1
            if self._closed:
                return
            if stream is not None:
                self._held[stream] += 1
            self._items.append((stream, item))
            self._changed.notify_all()

    def get(self, timeout: float | None = None) -> Any:
        """The next item; None after `timeout` seconds without one; END once closed and empty."""
        with self._changed:
            if not self._items and not self._closed:
                self._changed.wait(timeout)
            if not self._items:
                return END if self._closed else None
            stream, item = self._items.popleft()
            if stream is not None:
                self._held[stream] -= 1
            self._changed.notify_all()
            return item

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def drop_counts(self) -> dict[str, int]:
        with self._changed:
            return dict(self.drops)


class Pacer:
    """Holds frames back until their presentation time comes (replay --realtime, live from a file)."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping
        self.origin: float | None = None

    def wait(self, pts: float) -> None:
        now = time.perf_counter()
        if self.origin is None or self.origin + pts - now > 1.0:  # first frame, or a jump in the timestamps
            self.origin = now - pts
        delay = self.origin + pts - now
        if delay > 0:
            self.stopping.wait(delay)


@dataclass
class StreamSpec:
    name: str
    source: str
    opened: Source | None = None   # replay opens it up front: a bad path fails before the model loads

    @property
    def kind(self) -> str:
        return source_kind(self.source)


@dataclass
class RunOptions:
    live: bool = False
    endpoint: str | None = None            # None: the config's publish.endpoint
    jsonl: Path | None = None
    annotate: Path | None = None
    realtime: bool = False
    wait_subscribers: int = 0
    progress: bool = False
    explain: bool = False                  # heatmaps of alert_on frames on explain.<stream>, off the hot path
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))


@dataclass
class RunReport:
    frames: dict[str, int]
    alerts: dict[str, int]
    drops: dict[str, int]
    errors: list[str]
    unsent: int
    metrics: dict[str, Any]
    explain: dict[str, Any] | None = None   # the heatmap worker's WorkerStats, when heatmaps were on

    def as_dict(self) -> dict[str, Any]:
        """Per-stream counts, errors, heatmap counts, then the figures over all streams: --metrics-json."""
        streams = {name: {"frames": count, "alerts": self.alerts.get(name, 0),
                          "drops": self.drops.get(name, 0)} for name, count in self.frames.items()}
        explain = {"explain": self.explain} if self.explain is not None else {}
        return {"streams": streams, "errors": self.errors, "unsent": self.unsent, **explain, **self.metrics}

    def format(self) -> str:
        streams = ", ".join(f"{name}: {count} frames, {self.alerts.get(name, 0)} alerts, "
                            f"{self.drops.get(name, 0)} dropped" for name, count in self.frames.items())
        lines = [f"streams: {streams or 'none'}", format_summary(self.metrics)]
        if self.explain is not None:
            stats = self.explain
            lines.append(f"heatmaps: {stats['submitted']} queued, {stats['dropped']} dropped (worker busy), "
                         f"{stats['done']} published, {stats['failed']} failed"
                         + (f"; last error: {stats['last_error']}" if stats["last_error"] else ""))
        if self.unsent:
            lines.append(f"{self.unsent} messages not sent: a subscriber stopped reading during shutdown")
        return "\n".join(lines)


@dataclass
class _StreamState:
    """What the publish thread knows of one stream."""

    seq: int = -1
    alerts: int = 0
    state: str = "starting"
    fps: float | None = None


@dataclass
class Graph:
    sources: list[threading.Thread]
    workers: list[threading.Thread]
    frames: StageQueue
    results: StageQueue
    explain: ExplainWorker | None


class Runner:
    def __init__(self, bundle: Bundle, streams: list[StreamSpec], options: RunOptions) -> None:
        names = [spec.name for spec in streams]
        if len(set(names)) != len(names):
            raise SourceError(f"stream names must be unique, got {names}")
        self.bundle, self.streams, self.options = bundle, streams, options
        self.config = bundle.config
        self.publisher = Publisher(options.endpoint or self.config.publish.endpoint,
                                   self.config.publish.high_water_mark, lossless=not options.live)
        self.audit = AuditLog(options.jsonl) if options.jsonl else None
        self.metrics = Metrics()
        self.errors: list[str] = []
        self.unsent = 0
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._state = {name: _StreamState() for name in names}
        self._graph: Graph | None = None

    @property
    def endpoint(self) -> str:
        return self.publisher.endpoint

    def stop(self) -> bool:
        """Ask for a clean stop (any thread, or a signal handler); False if one was already asked for."""
        first = not self._stopping.is_set()
        self._stopping.set()
        return first

    def compose(self) -> Graph:
        """The data flow, top to bottom; nothing runs until the threads are started."""
        stream = self.config.stream
        if self.options.live:
            # Latency first: hold about one batch per stream; beyond it the oldest frame is stale, drop it.
            frames = StageQueue(stream.live_queue_size, "drop_oldest")
        else:
            # Lossless: a full queue makes the decoder wait.
            frames = StageQueue(stream.queue_size, "block")
        # Always blocking: in live mode nothing downstream blocks (ZeroMQ drops for a slow subscriber), so
        # this only ever waits in replay, where waiting is the point (backpressure from a lagging subscriber).
        results = StageQueue(RESULT_QUEUE_BATCHES, "block")
        sources = [self._thread(f"source-{spec.name}", self._read, spec, frames) for spec in self.streams]
        batcher: Batcher[Frame] = Batcher(stream.max_batch, stream.max_wait_ms / 1000.0)
        score = ScoreStage(self.bundle)
        settings = self.config.alert
        alert = AlertStage(self.bundle.threshold, settings.on_count, settings.window, settings.off_after,
                           settings.smoothing, settings.smoothing_window)
        opened = [spec.opened.info for spec in self.streams if spec.opened is not None]
        annotate = Annotator(self.options.annotate, opened[0]["fps"] if opened else None) \
            if self.options.annotate else None
        counts = [info["frames"] for info in opened]
        total = sum(counts) if counts and all(counts) else None
        # Heatmaps: a process of their own; results come back on its thread and wait here for the publish
        # thread (one entry per finished heatmap, drained on every pass of the publish loop).
        explained: deque[ExplainResult] = deque()
        explain = ExplainWorker(self.bundle.classifier, self.bundle.preprocess, explained.append,
                                max_pending=EXPLAIN_PENDING) if self.options.explain else None
        workers = [self._thread("score", self._score, frames, batcher, score, results),
                   self._thread("publish", self._publish, results, alert, annotate, total, explain,
                                explained)]
        return Graph(sources, workers, frames, results, explain)

    def run(self) -> RunReport:
        """Run until every source has ended (or `stop()`), then drain; returns the figures of the run."""
        try:
            if self.options.wait_subscribers:
                self._wait_for_subscribers(self.options.wait_subscribers)
            graph = self._graph = self.compose()
            if not self._stopping.is_set():   # else stopped while waiting for subscribers: nothing to run
                if graph.explain is not None:  # first: the process takes seconds to load the model
                    graph.explain.start()
                for thread in graph.sources + graph.workers:
                    thread.start()
                while any(t.is_alive() for t in graph.sources) and not self._stopping.wait(0.1):
                    pass
                for thread in graph.sources:  # one blocked in a network read gets its read timeout, no more
                    thread.join(self.config.stream.read_timeout_s + 1.0)
                graph.frames.close()
                for thread in graph.workers:
                    thread.join()
        finally:
            for spec in self.streams:
                if spec.opened is not None:  # its thread never took it
                    spec.opened.close()
            self.publisher.close()
            if self.audit:
                self.audit.close()
        if self._failure is not None:
            raise self._failure
        drops = graph.frames.drop_counts()
        return RunReport(
            frames={name: state.seq + 1 for name, state in self._state.items()},
            alerts={name: state.alerts for name, state in self._state.items()},
            drops={name: drops.get(name, 0) for name in self._state},
            errors=self.errors, unsent=self.unsent, metrics=self.metrics.summary(),
            explain=asdict(graph.explain.stats) if graph.explain is not None else None)

    # -- threads ---------------------------------------------------------------------------------------------

    def _thread(self, name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
        """A daemon thread; an unexpected exception in it stops the run and is raised again by `run()`."""
        def guarded() -> None:
            try:
                target(*args)
            except BaseException as error:
                self._failure = self._failure or error
                self._stopping.set()
                if self._graph is not None:
                    self._graph.frames.close()
                    self._graph.results.close()
        return threading.Thread(target=guarded, name=name, daemon=True)

    def _read(self, spec: StreamSpec, frames: StageQueue) -> None:
        """Source thread: decode and queue frames; in live mode reopen a failed network or device source."""
        stream = self.config.stream
        reopen = self.options.live and spec.kind != "file"
        pace = self.options.realtime or (self.options.live and spec.kind == "file")
        delay = stream.reconnect_initial_s
        while True:
            error = None
            source, spec.opened = spec.opened, None
            try:
                source = source or open_source(spec.source, spec.name, stream.hwaccel, stream.read_timeout_s)
                frames.put(SourceEvent(spec.name, "start", source.info), None)
                pacer = Pacer(self._stopping) if pace else None
                for frame in source:
                    if pacer:
                        pacer.wait(frame.pts)
                    frames.put(frame, spec.name)
                    delay = stream.reconnect_initial_s  # frames flow again: the next failure starts afresh
                    if self._stopping.is_set():
                        break
            except SourceError as failure:
                error = str(failure)
            finally:
                if source is not None:
                    source.close()
            if self._stopping.is_set() or not reopen:
                if error and not self._stopping.is_set():
                    self.errors.append(error)
                    frames.put(SourceEvent(spec.name, "error", {"message": error}), None)
                reason = "stopped" if self._stopping.is_set() else "error" if error else "end of stream"
                frames.put(SourceEvent(spec.name, "stop", {"reason": reason}), None)
                return
            reason = error or f"{spec.name}: stream ended"
            self.options.log(f"{reason}; reconnecting in {delay:.1f} s")
            frames.put(SourceEvent(spec.name, "reconnecting", {"reason": reason, "retry_in_s": delay}), None)
            if self._stopping.wait(delay):
                frames.put(SourceEvent(spec.name, "stop", {"reason": "stopped"}), None)
                return
            delay = min(2 * delay, stream.reconnect_max_s)

    def _score(self, frames: StageQueue, batcher: Batcher[Frame], score: ScoreStage,
               results: StageQueue) -> None:
        """Score thread: batch frames (from any stream) and score each batch in one forward pass."""
        def dispatch(batch: list[Frame] | None) -> None:
            if batch:
                self.metrics.record_depth("frames", len(frames))
                start = time.perf_counter()
                scored = score([frame.image for frame in batch])
                results.put(ScoredBatch(batch, scored, start, time.perf_counter()), "results")

        while True:
            item = frames.get(batcher.time_left(time.perf_counter()))
            now = time.perf_counter()
            if item is END:
                dispatch(batcher.flush())
                results.close()
                return
            if isinstance(item, SourceEvent):  # keep the stream's order: what came before goes out first
                dispatch(batcher.flush())
                results.put(item, None)
            elif item is None:
                dispatch(batcher.due(now))
            else:
                item.t_dequeued = now
                dispatch(batcher.add(item, now))

    def _publish(self, results: StageQueue, alert: AlertStage, annotate: Annotator | None,
                 total: int | None, explain: ExplainWorker | None, explained: deque[ExplainResult]) -> None:
        """Publish thread: decide, send and record every frame; heartbeats, events, reports, heatmaps."""
        beat = self.config.publish.heartbeat_s
        report_every = self.config.stream.report_every_s if self.options.live else 0.0
        started = time.perf_counter()
        next_beat, next_report, reported = started, started + report_every, 0
        bar = tqdm(total=total, unit="frame", disable=None if self.options.progress else True,
                   file=sys.stderr, dynamic_ncols=True)
        try:
            while True:
                item = results.get(max(0.0, next_beat - time.perf_counter()))
                now = time.perf_counter()
                if now >= next_beat:
                    self._heartbeat(now - started, alert)
                    next_beat = now + beat
                if report_every and now >= next_report:
                    self.options.log(self._live_report(reported))
                    next_report, reported = now + report_every, len(self.metrics)
                self._send_explained(explained)
                if item is END:
                    return
                if isinstance(item, SourceEvent):
                    self._source_event(item)
                elif item is not None:
                    self.metrics.record_depth("results", len(results))
                    self._publish_batch(item, alert, annotate, explain)
                    bar.update(len(item.frames))
        finally:
            bar.close()
            if explain is not None:  # the heatmaps already queued: finished and sent before the stop events
                explain.close(EXPLAIN_CLOSE_S)
                self._send_explained(explained)
            for name, state in self._state.items():  # streams whose source thread did not say goodbye
                if state.state not in ("stopped", "starting"):
                    self._event(name, "stop", reason="stopped")
            if annotate is not None:
                annotate.close()

    # -- publishing ------------------------------------------------------------------------------------------

    def _publish_batch(self, batch: ScoredBatch, alert: AlertStage, annotate: Annotator | None,
                       explain: ExplainWorker | None) -> None:
        picked = time.perf_counter()
        threshold = self.bundle.threshold
        for frame, result in zip(batch.frames, batch.results, strict=True):
            state = self._state[frame.stream]
            decision = alert(frame.stream, result.score)
            state.seq += 1
            message = messages.frame_message(
                stream=frame.stream, seq=state.seq, frame=frame.index, pts=frame.pts,
                t_capture=frame.t_capture, t_publish=time.time(), pred=result.pred, prob=result.prob,
                score=result.score, threshold=threshold, ood=decision.ood, alert=decision.alert,
                explain=result.explain)
            self._send(messages.frame_topic(frame.stream), message)
            if decision.changed:
                state.alerts += decision.alert
                self._event(frame.stream, "alert_on" if decision.alert else "alert_off", frame=frame.index,
                            pts=round(frame.pts, 6), score=message["score"], threshold=message["threshold"],
                            explain=result.explain)
                if decision.alert and explain is not None:
                    explain.submit(frame.stream, state.seq, frame.image)   # never waits; full: dropped
            if annotate is not None:
                annotate(frame.image, pred=result.pred, prob=result.prob, score=result.score,
                         threshold=threshold, ood=decision.ood, alert=decision.alert)
            self.metrics.record(frame.t_decoded, frame.t_dequeued, batch.t_dispatched, batch.t_scored, picked,
                                time.perf_counter())

    def _source_event(self, event: SourceEvent) -> None:
        state = self._state[event.stream]
        state.state = {"start": "running", "stop": "stopped", "reconnecting": "reconnecting"}.get(
            event.event, state.state)
        if event.event == "start":
            state.fps = state.fps or event.details.get("fps")
        self._event(event.stream, event.event, **event.details)

    def _event(self, stream: str, event: str, **details: Any) -> None:
        message = messages.event_message(stream, event, self._state[stream].seq, time.time(), **details)
        self._send(messages.event_topic(stream), message)

    def _send(self, topic: str, message: dict[str, Any]) -> None:
        """Audit, then ZeroMQ."""
        line = messages.encode(message)
        if self.audit:
            self.audit.write(line)
        self._send_parts([topic.encode(), line.encode()])

    def _send_explained(self, explained: deque[ExplainResult]) -> None:
        """Heatmaps the worker finished, sent from this thread because the socket is not thread-safe."""
        while explained:
            self._send_parts(explained.popleft().multipart())

    def _send_parts(self, parts: list[bytes]) -> None:
        """ZeroMQ; in replay wait while a subscriber lags (up to STOP_GRACE_S once stopping)."""
        pause, blocked_since = RETRY_MIN_S, None
        while not self.publisher.try_send_parts(parts):
            if self._stopping.is_set():
                blocked_since = blocked_since or time.perf_counter()
                if time.perf_counter() - blocked_since > STOP_GRACE_S:
                    self.unsent += 1
                    return
            time.sleep(pause)
            pause = min(2 * pause, RETRY_MAX_S)

    def _heartbeat(self, uptime: float, alert: AlertStage) -> None:
        """Liveness for displays (never blocks: a lagging subscriber just misses a beat)."""
        self.publisher.poll_subscriptions()
        drops = self._graph.frames.drop_counts() if self._graph else {}
        streams = {name: {"state": state.state, "last_seq": state.seq, "frames": state.seq + 1,
                          "drops": drops.get(name, 0), "alert": alert.is_on(name)}
                   for name, state in self._state.items()}
        message = messages.heartbeat_message(time.time(), uptime, streams)
        self.publisher.try_send(messages.HEARTBEAT_TOPIC, messages.encode(message))

    def _live_report(self, since: int) -> str:
        summary = self.metrics.summary(start=since, skip=0)
        e2e = summary["latency_ms"]["end_to_end"]
        drops = self._graph.frames.drop_counts() if self._graph else {}
        latency = f"end-to-end p50 {e2e['p50']:.0f} ms, p99 {e2e['p99']:.0f} ms" if e2e else "no frames"
        return (f"[live] {summary['frames']} frames, {summary['fps'] or 0:.1f} fps, {latency}, "
                f"dropped {sum(drops.values())} in all")

    # -- helpers ---------------------------------------------------------------------------------------------

    def _wait_for_subscribers(self, count: int) -> None:
        self.options.log(f"waiting for {count} subscriber(s) on {self.endpoint}")
        while not self.publisher.wait_for_subscribers(count, 0.2):
            if self._stopping.is_set():
                return


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `nero replay` and `nero live` share."""
    parser.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    parser.add_argument("--publish", metavar="ENDPOINT",
                        help="ZeroMQ endpoint to bind (default: the config's publish.endpoint, "
                             "tcp://127.0.0.1:5556; use tcp://0.0.0.0:PORT to serve other machines)")
    parser.add_argument("--jsonl", type=Path, metavar="FILE",
                        help="audit file: every frame and event message, one JSON object per line")
    parser.add_argument("--metrics-json", type=Path, metavar="FILE", help="write the run's figures here")


def execute(runner: Runner, metrics_json: Path | None = None) -> int:
    """Run a monitor for a command: signals stop it cleanly, the summary goes to stdout, errors exit non-zero.

    The first SIGINT or SIGTERM asks for a clean stop (drain, flush, close); a second one aborts at once.
    """
    def on_signal(signum: int, _frame: object) -> None:
        if not runner.stop():
            raise KeyboardInterrupt
        runner.options.log(f"{signal.Signals(signum).name}: stopping after the frames in flight "
                           "(send it again to abort)")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        report = runner.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(report.format(), flush=True)
    if metrics_json is not None:
        metrics_json.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    if report.errors:
        raise UserError("; ".join(report.errors))
    return 0
