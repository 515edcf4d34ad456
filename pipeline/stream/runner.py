"""The streaming monitor: the stage graph, its threads and queues, and what happens when a part falls behind.

    source thread   --[frame queue]--> forward thread --[pass queue]--> score thread --[result queue]-->
    per stream        block | drop     (batch, network)   block          (detector,      block
    (decode, pace)                                                         explanation)

    --> publish thread --> annotate thread (MP4)
        (alert, send, audit)

`Runner.compose()` wires this graph in one place; the stages (stages/) know nothing of threads or queues.
Decoding runs in its own thread per stream (it is the usual bottleneck), the network in one thread (one copy of
the model, batches may mix streams), the reading of its outputs (detector, quality guard, explanation) in the
next, and everything that talks to the outside world in one more, so a slow disk or network never stalls the
model. The network and the scoring are apart so that the scoring of one batch runs while the network computes
the next: in one thread the second core sat idle while a batch was scored (1.9 ms a frame of the 2-core CPU's
8.2, with preprocessing), and the monitor ran at 0.78x of the bare forward; apart, 0.83-0.88x, with 95% of
the cores busy (`nero bench` on the demo clip, docs/PERFORMANCE.md).

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
alert on to an `ExplainWorker` (a separate process, at most `explain.max_pending` frames waiting, a frame that
finds them waiting is dropped and counted) and goes on at once; finished heatmaps come back on the worker's thread
into the outbox, a deque that the publish thread drains on each pass and sends on explain.<stream>, since only
the publish thread may touch the socket. Previews (`publish.preview_fps`) take the same way back from their
own thread (pipeline/stream/preview.py). The nearest training window's thumbnail, on each alert_on, is a tile
of the artifact's mosaic and goes out at once.

Control items (`SourceEvent`: start, stop, error, reconnecting) travel through the same queues as the frames,
so each stream's events reach subscribers in order with its frames. `stop()` (SIGINT, SIGTERM) lets the
sources finish their current frame, drains both queues, sends the stop events, flushes the audit file and
closes the socket; with heatmaps on, the ones already queued are finished (up to `explain.close_s`) and
sent first.

The thread bodies only move items; what a message says and what each stream's state is belongs to
`StreamStates` (pipeline/stream/state.py). Runtime settings come in `RunSettings` (the config's stream,
alert, publish and explain sections), apart from the model bundle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline import messages
from pipeline.config import AlertConfig, Config, ExplainConfig, PublishConfig, StreamConfig
from pipeline.explain.field import window_class
from pipeline.explain.worker import ExplainWorker
from pipeline.media.images import encode_jpeg
from pipeline.media.video import Frame, Source, SourceError, open_source, source_kind
from pipeline.media.yuv import rgb_array
from pipeline.model.bundle import Bundle, ModelPass
from pipeline.security import ClientKeys, ServerKeys
from pipeline.stream.metrics import Metrics
from pipeline.stream.preview import PreviewWorker
from pipeline.stream.queues import END, StageQueue
from pipeline.stream.report import RunReport
from pipeline.stream.state import StreamStates
from stages.alert import AlertStage
from stages.annotate import Annotator
from stages.audit import AuditError, AuditLog
from stages.batcher import Batcher
from stages.forward import ForwardStage
from stages.pace import Pacer
from stages.publish import Publisher
from stages.score import Scored, ScoreStage

log = logging.getLogger(__name__)

RETRY_MIN_S, RETRY_MAX_S = 0.0005, 0.02   # replay: pauses between sends a lagging subscriber refused
FLOOD_NOTICES = 1000   # ignored subscriptions within one heartbeat that are worth a warning


@dataclass
class SourceEvent:
    """start | stop | error | reconnecting, from a source thread, in order with the stream's frames."""

    stream: str
    event: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ForwardBatch:
    frames: list[Frame]
    model_pass: ModelPass
    t_dispatched: float


@dataclass
class ScoredBatch:
    frames: list[Frame]
    results: list[Scored]
    t_dispatched: float
    t_scored: float


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
    """What this run does (the command's flags)."""

    live: bool = False
    endpoint: str | None = None            # None: the settings' publish.endpoint
    jsonl: Path | None = None
    append: bool = False                   # add to an existing audit file instead of starting a new one
    annotate: Path | None = None
    realtime: bool = False
    wait_subscribers: int = 0
    progress: bool = False
    explain: bool = False                  # heatmaps of alert_on frames on explain.<stream>, off the hot path
    curve: ServerKeys | ClientKeys | None = None   # encrypt; bound: admit only the allow-list; hub: our keys
    hub: str | None = None                 # publish into `nero hub` at this endpoint instead of binding
    metrics_port: int | None = None        # serve Prometheus /metrics on 127.0.0.1:PORT (0: a free port)


def open_stream(source: str, name: str, stream: StreamConfig, model_device: str) -> Source:
    """A source opened as the monitor reads it (replay, live, archive and bench alike): NVDEC where
    `stream.hwaccel` asks; for a GPU model, frames kept as YUV planes on its device (converted there, half the
    bytes of RGB over PCIe, none at all with NVDEC: pipeline/media/yuv.py); for a CPU model, RGB arrays."""
    yuv_device = model_device if model_device.startswith("cuda") else None
    return open_source(source, name, stream.hwaccel, stream.read_timeout_s, yuv_device)


@dataclass
class RunSettings:
    """How the monitor runs (queues, batching, reconnects, reports, alerts, publishing, heatmaps)."""

    stream: StreamConfig = field(default_factory=StreamConfig)
    alert: AlertConfig = field(default_factory=AlertConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)

    @classmethod
    def of(cls, config: Config) -> RunSettings:
        return cls(config.stream, config.alert, config.publish, config.explain)


ANNOTATE_QUEUE = 64   # frames waiting for the annotation encoder (block: the MP4 keeps every frame)


@dataclass
class Graph:
    sources: list[threading.Thread]
    workers: list[threading.Thread]
    frames: StageQueue
    passes: StageQueue
    results: StageQueue
    explain: ExplainWorker | None
    preview: PreviewWorker | None
    annotations: StageQueue | None


class Runner:
    def __init__(self, bundle: Bundle, streams: list[StreamSpec], options: RunOptions,
                 settings: RunSettings | None = None) -> None:
        names = [spec.name for spec in streams]
        if len(set(names)) != len(names):
            raise SourceError(f"stream names must be unique, got {names}")
        self.bundle, self.streams, self.options = bundle, streams, options
        self.settings = settings or RunSettings()
        publish = self.settings.publish
        self.publisher = Publisher(options.hub or options.endpoint or publish.endpoint, publish.high_water_mark,
                                   lossless=not options.live, topics=messages.run_topics(names),
                                   curve=options.curve, send_buffer_bytes=publish.send_buffer_bytes,
                                   connect=options.hub is not None)
        self.audit = AuditLog(options.jsonl, options.append) if options.jsonl else None
        self.metrics = Metrics()
        self.exporter = None
        if options.metrics_port is not None:   # prometheus-client is an extra: imported only when asked for
            from pipeline.stream.prometheus import Exporter
            self.exporter = Exporter(options.metrics_port, names)
        self.errors: list[str] = []
        self.unsent = 0
        self._ignored_seen = 0
        self._realtime_kept = True
        self._drops_seen = 0
        self._stopping = threading.Event()
        self._model_ready = threading.Semaphore(0)   # released by the forward and score threads once each has
        # made its own GPU handles; the sources wait for both
        self._failure: BaseException | None = None
        self._states = StreamStates(names, bundle.detector, bundle.alert_threshold)
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
        stream, alerting = self.settings.stream, self.settings.alert
        if self.options.live:
            # Latency first: hold about one batch per stream; beyond it the oldest frame is stale, drop it.
            frames = StageQueue(stream.live_queue_size, "drop_oldest", round(stream.queue_mb * 2**20))
        else:
            # Lossless: a full queue makes the decoder wait.
            frames = StageQueue(stream.queue_size, "block", round(stream.queue_mb * 2**20))
        # Always blocking: in live mode nothing downstream blocks (ZeroMQ drops for a slow subscriber), so
        # this only ever waits in replay, where waiting is the point (backpressure from a lagging subscriber).
        results = StageQueue(stream.result_queue_batches, "block")
        sources = [self._thread(f"source-{spec.name}", self._read, spec, frames) for spec in self.streams]
        # The batch window waits for frames of other streams. A single paced stream's next frame is a frame
        # interval away (40 ms at 25 fps), past any window, so there the window only delayed every frame
        # (10 ms at the default); a backlog still forms batches, from the frames already waiting.
        paced_alone = len(self.streams) == 1 and (self.options.live or self.options.realtime)
        batcher: Batcher[Frame] = Batcher(stream.max_batch, 0.0 if paced_alone else stream.max_wait_ms / 1000.0)
        forward, score = ForwardStage(self.bundle), ScoreStage(self.bundle)
        # One batch waits between the network and the scoring: enough for the two to overlap, and blocking, so a
        # backlog stays in the frame queue, where live mode's drop policy applies.
        passes = StageQueue(1, "block")
        alert = AlertStage(lambda: self.bundle.alert_rule(alerting))
        opened = [spec.opened.info for spec in self.streams if spec.opened is not None]
        # Annotation (--annotate) draws and encodes on a thread of its own: on the publish thread it had held
        # every message back (publish p50 149 ms with it, 1-3 ms without). Its queue blocks when full, so the
        # MP4 keeps every frame; encoding a 480p frame takes a few ms, so it only absorbs jitter.
        annotations = StageQueue(ANNOTATE_QUEUE, "block", round(stream.queue_mb * 2**20)) \
            if self.options.annotate else None
        counts = [info["frames"] for info in opened]
        total = sum(counts) if counts and all(counts) else None
        # Heatmaps (a process of their own) and previews (a thread) come back on their threads and wait in the
        # outbox for the publish thread (one multipart message each, drained on every pass of its loop).
        outbox: deque[list[bytes]] = deque()
        heatmaps, publish = self.settings.explain, self.settings.publish
        explain = ExplainWorker(self.bundle.classifier, self.bundle.preprocess,
                                lambda result: outbox.append(result.multipart()),
                                max_pending=heatmaps.max_pending, max_side=heatmaps.max_side) \
            if self.options.explain else None
        preview = PreviewWorker(publish.preview_fps, publish.preview_width, outbox.append) \
            if publish.preview_fps > 0 else None
        # The nearest windows' thumbnails: their mosaic read now (264 ms for the bundled 3072 x 4416 JPEG), not on
        # the publish thread when the first alert turns on.
        self.bundle.thumbnail(0)
        if self.exporter is not None:
            self.exporter.watch_queues(lambda: (frames.drop_counts(), frames.held_counts(), len(results)))
        workers = [self._thread("forward", self._forward, frames, batcher, forward, passes),
                   self._thread("score", self._score, passes, score, results),
                   self._thread("publish", self._publish, results, alert, annotations, total, explain, preview,
                                outbox)]
        if annotations is not None:
            annotate = Annotator(self.options.annotate, opened[0]["fps"] if opened else None)
            workers.append(self._thread("annotate", self._annotate, annotations, annotate))
        return Graph(sources, workers, frames, passes, results, explain, preview, annotations)

    def run(self) -> RunReport:
        """Run until every source has ended (or `stop()`), then drain; returns the figures of the run."""
        try:
            if self.options.wait_subscribers:
                self._wait_for_subscribers(self.options.wait_subscribers)
            graph = self._graph = self.compose()
            if not self._stopping.is_set():   # else stopped while waiting for subscribers: nothing to run
                if graph.explain is not None:  # first: the process takes seconds to load the model
                    graph.explain.start()
                for shape in self._opened_shapes():
                    self.bundle.warm_up(self.settings.stream.max_batch, shape)
                if graph.preview is not None:
                    graph.preview.start()
                for thread in graph.workers:
                    thread.start()
                # The sources start once the model's threads are ready, so no frame waits for their first-use
                # costs.
                for _ in range(2):
                    while not self._model_ready.acquire(timeout=0.1) and not self._stopping.is_set():
                        pass
                for thread in graph.sources:
                    thread.start()
                while any(t.is_alive() for t in graph.sources) and not self._stopping.wait(0.1):
                    pass
                for thread in graph.sources:  # one blocked in a network read gets its read timeout, no more
                    thread.join(self.settings.stream.read_timeout_s + 1.0)
                graph.frames.close()
                for thread in graph.workers:
                    thread.join()
        finally:
            for spec in self.streams:
                if spec.opened is not None:  # its thread never took it
                    spec.opened.close()
            self.publisher.close()
            if self.exporter is not None:
                self.exporter.close()
            if self.audit:
                self.audit.close()
        if self._failure is not None:
            raise self._failure
        drops = graph.frames.drop_counts()
        return RunReport(
            frames=self._states.frames(), alerts=self._states.alerts(),
            drops={name: drops.get(name, 0) for name in self._states.streams},
            errors=self.errors, unsent=self.unsent, metrics=self.metrics.summary(),
            explain=asdict(graph.explain.stats) if graph.explain is not None else None,
            ignored_subscriptions=self.publisher.ignored_subscriptions)

    def _opened_shapes(self) -> set[tuple[int, int] | None]:
        """The frame sizes (height, width) of the sources opened up front, or {None}: a live source opens in its
        own thread, so its size is not known before its first frame."""
        shapes = set()
        for spec in self.streams:
            info = spec.opened.info if spec.opened is not None else {}
            if info.get("height", 0) > 0 and info.get("width", 0) > 0:
                shapes.add((info["height"], info["width"]))
        return shapes or {None}

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
                    self._graph.passes.close()
                    self._graph.results.close()
                    if self._graph.annotations is not None:
                        self._graph.annotations.close()
        return threading.Thread(target=guarded, name=name, daemon=True)

    def _read(self, spec: StreamSpec, frames: StageQueue) -> None:
        """Source thread: decode and queue frames; in live mode reopen a failed network or device source."""
        stream = self.settings.stream
        reopen = self.options.live and spec.kind != "file"
        pace = self.options.realtime or (self.options.live and spec.kind == "file")
        delay = stream.reconnect_initial_s
        while True:
            error = None
            source, spec.opened = spec.opened, None
            try:
                source = source or open_stream(spec.source, spec.name, stream, str(self.bundle.device))
                frames.put(SourceEvent(spec.name, "start", source.info), None)
                pacer = Pacer(self._stopping.wait) if pace else None
                for frame in source:
                    if pacer:
                        pacer(frame.pts)
                        # A paced file stands in for a capture card: the frame arrives, decoded, at its
                        # presentation time. The decoder read it ahead while waiting; latency counts from
                        # the arrival (it had counted the read-ahead, 40 ms at 25 fps, as queueing).
                        frame.t_capture, frame.t_decoded = time.time(), time.perf_counter()
                    frames.put(frame, spec.name, frame.image.nbytes)
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
            log.warning("%s; reconnecting in %.1f s", reason, delay)
            frames.put(SourceEvent(spec.name, "reconnecting", {"reason": reason, "retry_in_s": delay}), None)
            if self._stopping.wait(delay):
                frames.put(SourceEvent(spec.name, "stop", {"reason": "stopped"}), None)
                return
            delay = min(2 * delay, stream.reconnect_max_s)

    def _forward(self, frames: StageQueue, batcher: Batcher[Frame], forward: ForwardStage,
                 passes: StageQueue) -> None:
        """Forward thread: batch frames (from any stream) and run each batch through the network once."""
        self.bundle.warm_up_thread()
        self._model_ready.release()
        def dispatch(batch: list[Frame] | None) -> None:
            if batch:
                self.metrics.record_depth("frames", len(frames))
                start = time.perf_counter()
                passes.put(ForwardBatch(batch, forward([frame.image for frame in batch]), start), "passes")

        while True:
            item = frames.get(batcher.time_left(time.perf_counter()))
            now = time.perf_counter()
            if item is END:
                dispatch(batcher.flush())
                passes.close()
                return
            if isinstance(item, SourceEvent):  # keep the stream's order: what came before goes out first
                dispatch(batcher.flush())
                passes.put(item, None)
            elif item is None:
                dispatch(batcher.due(now))
            else:
                item.t_dequeued = now
                dispatch(batcher.add(item, now))

    def _score(self, passes: StageQueue, score: ScoreStage, results: StageQueue) -> None:
        """Score thread: read each batch's network outputs into per-frame results, in order."""
        self.bundle.warm_up_thread()
        self._model_ready.release()
        while (item := passes.get()) is not END:
            if isinstance(item, ForwardBatch):
                scored = score(item.model_pass)
                results.put(ScoredBatch(item.frames, scored, item.t_dispatched, time.perf_counter()), "results")
            elif item is not None:
                results.put(item, None)
        results.close()

    def _annotate(self, annotations: StageQueue, annotate: Annotator) -> None:
        """Annotation thread: draw and encode each published frame, in order, until the publish thread ends."""
        try:
            while (item := annotations.get()) is not END:
                if item is not None:
                    image, result = item
                    annotate(rgb_array(image), **result)   # a GPU frame is downloaded here, off the hot path
        finally:
            annotate.close()

    def _publish(self, results: StageQueue, alert: AlertStage, annotations: StageQueue | None,
                 total: int | None, explain: ExplainWorker | None, preview: PreviewWorker | None,
                 outbox: deque[list[bytes]]) -> None:
        """Publish thread: decide, send and record every frame; heartbeats, events, reports, heatmaps."""
        beat = self.settings.publish.heartbeat_s
        report_every = self.settings.stream.report_every_s if self.options.live else 0.0
        started = time.perf_counter()
        next_beat, next_report, reported = started, started + report_every, 0
        paced = self.options.live or self.options.realtime
        check_every = self.settings.stream.realtime_check_s
        next_check, checked = started + check_every, 0
        bar = tqdm(total=total, unit="frame", disable=None if self.options.progress else True,
                   dynamic_ncols=True)
        try:
            while True:
                item = results.get(max(0.0, next_beat - time.perf_counter()))
                now = time.perf_counter()
                if now >= next_beat:
                    self._heartbeat(now - started, alert)
                    next_beat = now + beat
                if report_every and now >= next_report:
                    log.info("%s", self._live_report(reported))
                    next_report, reported = now + report_every, len(self.metrics)
                if paced and now >= next_check:
                    self._check_realtime(checked)
                    next_check, checked = now + check_every, len(self.metrics)
                self._send_outbox(outbox)
                if item is END:
                    return
                if isinstance(item, SourceEvent):
                    self._send(self._states.source_event(item.stream, item.event, item.details, time.time()))
                elif item is not None:
                    self.metrics.record_depth("results", len(results))
                    self._publish_batch(item, alert, annotations, explain, preview)
                    bar.update(len(item.frames))
        finally:
            bar.close()
            if explain is not None:  # the heatmaps already queued: finished and sent before the stop events
                explain.close(self.settings.explain.close_s)
            if preview is not None:
                preview.close()
            self._send_outbox(outbox)
            for message in self._states.stop_unfinished(time.time()):
                self._send(message)
            if annotations is not None:
                annotations.close()    # the annotation thread finishes what is queued, then closes the MP4

    # -- publishing ------------------------------------------------------------------------------------------

    def _publish_batch(self, batch: ScoredBatch, alert: AlertStage, annotations: StageQueue | None,
                       explain: ExplainWorker | None, preview: PreviewWorker | None) -> None:
        picked = time.perf_counter()
        threshold = self.bundle.threshold
        for frame, result in zip(batch.frames, batch.results, strict=True):
            decision = alert(frame.stream, result.score, result.quality)
            message = self._states.frame_message(frame, result, decision, threshold, time.time())
            self._send(message)
            if decision.changed:
                self._send(self._states.alert_event(message, time.time()))
                if decision.alert:
                    self._send_nearest(message)
                if decision.alert and explain is not None:
                    explain.submit(frame.stream, message["seq"], rgb_array(frame.image))   # never waits
            if preview is not None:
                preview.offer(frame.stream, message["seq"], frame.image, picked)   # never waits
            if annotations is not None:
                annotations.put((frame.image, {"pred": result.pred, "prob": result.prob, "score": result.score,
                                               "threshold": threshold, "ood": decision.ood,
                                               "alert": decision.alert}), "annotate", frame.image.nbytes)
            published = time.perf_counter()
            self.metrics.record(frame.t_decoded, frame.t_dequeued, batch.t_dispatched, batch.t_scored, picked,
                                published)
            if self.exporter is not None:
                self.exporter.record(frame.stream, published - frame.t_decoded, decision.ood,
                                     decision.changed and decision.alert)

    def _send(self, message: dict[str, Any]) -> None:
        """Audit, then ZeroMQ."""
        line = messages.encode(message)
        if self.audit:
            try:
                self.audit.write(line)
            except AuditError as error:
                if not self.options.live:
                    raise               # a replay's audit is its product: stop, with the file whole so far
                self._lose_audit(error)
        self._send_parts([messages.topic_of(message).encode(), line.encode()])

    def _lose_audit(self, error: AuditError) -> None:
        """Live: alerting matters more than its record. Go on without the audit, and say so once, on stderr,
        on every stream's event topic and in the run's errors (the exit status)."""
        self.audit.close()
        self.audit = None
        log.error("%s; live alerts go on without an audit", error)
        self.errors.append(str(error))
        for stream in self._states.streams:
            event = self._states.event(stream, "error", time.time(), message=f"audit stopped: {error}")
            self._send_parts([messages.topic_of(event).encode(), messages.encode(event).encode()])

    def _send_outbox(self, outbox: deque[list[bytes]]) -> None:
        """Heatmaps and previews finished elsewhere, sent from this thread because the socket is not
        thread-safe."""
        while outbox:
            self._send_parts(outbox.popleft())

    def _send_nearest(self, message: dict[str, Any]) -> None:
        """The thumbnail of the training window nearest to the frame that turned the alert on, where the
        detector names one and the artifact stores thumbnails (a tile of the mosaic `compose` read: ~0.1 ms)."""
        explanation = message["explain"]
        row = explanation.get("window_row")
        tile = self.bundle.thumbnail(row) if row is not None else None
        if tile is not None:
            self._send_parts(messages.nearest_parts(message["stream"], message["seq"], explanation["window"],
                                                    window_class(explanation), encode_jpeg(tile)))

    def _send_parts(self, parts: list[bytes]) -> None:
        """ZeroMQ; in replay wait while a subscriber lags (up to stream.stop_grace_s once stopping)."""
        pause, blocked_since = RETRY_MIN_S, None
        while not self.publisher.try_send_parts(parts):
            if self._stopping.is_set():
                blocked_since = blocked_since or time.perf_counter()
                if time.perf_counter() - blocked_since > self.settings.stream.stop_grace_s:
                    self.unsent += 1
                    return
            time.sleep(pause)
            pause = min(2 * pause, RETRY_MAX_S)

    def _heartbeat(self, uptime: float, alert: AlertStage) -> None:
        """Liveness for displays (never blocks: a lagging subscriber just misses a beat); says once a beat
        when subscriptions this run cannot serve pour in (stages/publish.py: what a flood costs)."""
        ignored = self.publisher.ignored_subscriptions
        if ignored - self._ignored_seen >= FLOOD_NOTICES:
            log.warning("%d subscriptions to topics this monitor does not publish arrived in %.0f s and were "
                        "ignored: someone who can reach %s is flooding it", ignored - self._ignored_seen,
                        self.settings.publish.heartbeat_s, self.endpoint)
        self._ignored_seen = ignored
        drops = self._graph.frames.drop_counts() if self._graph else {}
        message = self._states.heartbeat(time.time(), uptime, drops, alert.is_on)
        self.publisher.try_send(messages.HEARTBEAT_TOPIC, messages.encode(message))

    def _check_realtime(self, since: int) -> None:
        """Say when the monitor stops keeping up with its sources' frame rate or its latency bound, and when it
        does again: once each way, on stderr and as a `realtime` event on every stream, with the likely cause
        (the stage where the frames spent most of their time)."""
        summary = self.metrics.summary(start=since, skip=0)
        source_fps = self._states.source_fps()
        if not summary["frames"] or not source_fps:
            return
        fps, latency = summary["fps"] or 0.0, summary["latency_ms"]
        p99 = latency["end_to_end"].get("p99", 0.0)
        drops = sum(self._graph.frames.drop_counts().values()) if self._graph else 0
        kept = fps >= 0.95 * source_fps and p99 <= self.settings.stream.latency_warn_ms and \
            drops == self._drops_seen
        self._drops_seen = drops
        if kept == self._realtime_kept:
            return
        self._realtime_kept = kept
        if kept:
            message = f"real time kept again: {fps:.1f} fps for {source_fps:.1f}, end-to-end p99 {p99:.0f} ms"
            log.info("%s", message)
        else:
            stages = {stage: latency[stage].get("p50", 0.0) for stage in ("queue", "infer", "publish")}
            cause = max(stages, key=stages.get)
            why = {"queue": "frames wait for the model, which is slower than the sources (fewer streams, a "
                            "faster backend: model.backend, model.precision: bfloat16 on a CPU with bfloat16 "
                            "instructions or int8 with an artifact fitted for it, or a GPU)",
                   "infer": "the model itself is slow on this machine (another process may be using the cores)",
                   "publish": "publishing is slow (a subscriber that lags in replay, a slow disk for the audit)"}
            message = (f"real time lost: {fps:.1f} fps published for {source_fps:.1f} fps of sources, end-to-end "
                       f"p99 {p99:.0f} ms (bound {self.settings.stream.latency_warn_ms:.0f}), {drops} dropped; "
                       f"likely cause: {why[cause]}; {cause} p50 {stages[cause]:.0f} ms")
            log.warning("%s", message)
        for stream in self._states.streams:
            self._send(self._states.event(stream, "realtime", time.time(), kept=kept, fps=round(fps, 2),
                                          source_fps=round(source_fps, 2), p99_ms=round(p99, 1),
                                          message=message))

    def _live_report(self, since: int) -> str:
        summary = self.metrics.summary(start=since, skip=0)
        e2e = summary["latency_ms"]["end_to_end"]
        drops = self._graph.frames.drop_counts() if self._graph else {}
        latency = f"end-to-end p50 {e2e['p50']:.0f} ms, p99 {e2e['p99']:.0f} ms" if e2e else "no frames"
        return (f"[live] {summary['frames']} frames, {summary['fps'] or 0:.1f} fps, {latency}, "
                f"dropped {sum(drops.values())} in all")

    # -- helpers ---------------------------------------------------------------------------------------------

    def _wait_for_subscribers(self, count: int) -> None:
        log.info("waiting for %d subscriber(s) on %s", count, self.endpoint)
        while not self.publisher.wait_for_subscribers(count, 0.2):
            if self._stopping.is_set():
                return
