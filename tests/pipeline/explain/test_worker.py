"""The off-hot-path heatmap worker: results for accepted frames, never blocking, drops counted."""

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.explain.worker import ExplainResult, ExplainWorker
from pipeline.media.images import list_images, read_rgb

FIXTURES = Path(__file__).resolve().parents[2] / "data"
MAX_SIDE = 160     # below the fixture frames' 256 px, so the PNG must be scaled down


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    paths = list_images(FIXTURES / "kvasir-seg" / "val" / "images")[:3]
    paths += list_images(FIXTURES / "OOD" / "capsule")[:1]
    return [read_rgb(path) for path in paths]


class Collector:
    """on_result target: collects results from the worker's delivery thread."""

    def __init__(self) -> None:
        self.results: list[ExplainResult] = []
        self.arrived = threading.Condition()

    def __call__(self, result: ExplainResult) -> None:
        with self.arrived:
            self.results.append(result)
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 120.0) -> list[ExplainResult]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.results) >= count, timeout), "no results in time"
            return list(self.results)


def test_every_accepted_frame_comes_back_as_a_png_with_its_seq(bundle, frames):
    collector = Collector()
    worker = ExplainWorker(bundle.classifier, bundle.preprocess, collector, max_pending=len(frames),
                           max_side=MAX_SIDE)
    with worker:
        accepted = [worker.submit("cam1", seq, frame) for seq, frame in enumerate(frames)]
        results = collector.wait_for(len(frames))
    assert all(accepted) and worker.stats.submitted == len(frames) and worker.stats.dropped == 0
    assert [(r.stream, r.seq) for r in results] == [("cam1", seq) for seq in range(len(frames))]
    for result, frame in zip(results, frames, strict=True):
        image = cv2.imdecode(np.frombuffer(result.png, np.uint8), cv2.IMREAD_COLOR)
        assert max(image.shape[:2]) == MAX_SIDE
        assert image.shape[1] / image.shape[0] == pytest.approx(frame.shape[1] / frame.shape[0], rel=0.02)
        assert result.conservation_error < 1e-3 and result.seconds > 0
        topic, header, png = result.multipart()
        assert topic == b"explain.cam1" and png == result.png
        assert json.loads(header)["seq"] == result.seq
    assert worker.stats.done == len(frames) and worker.stats.failed == 0


def test_submit_never_blocks_and_counts_drops(bundle, frames):
    collector = Collector()
    with ExplainWorker(bundle.classifier, bundle.preprocess, collector, max_pending=1) as worker:
        outcomes, slowest = [], 0.0
        for seq in range(20):                      # a burst of alerting frames, far faster than heatmaps
            start = time.perf_counter()
            outcomes.append(worker.submit("cam1", seq, frames[seq % len(frames)]))
            slowest = max(slowest, time.perf_counter() - start)
        accepted = sum(outcomes)
        results = collector.wait_for(accepted)
    # a frame copy and a queue put: far below one heatmap (~0.3 s and more), i.e. never waits for the worker
    assert slowest < 0.1
    assert outcomes[0] and 1 <= accepted < 20
    assert worker.stats.dropped == 20 - accepted and worker.stats.submitted == accepted
    assert [r.seq for r in results] == [seq for seq, ok in enumerate(outcomes) if ok]


def test_close_is_idempotent_and_ends_submissions(bundle):
    worker = ExplainWorker(bundle.classifier, bundle.preprocess, lambda result: None).start()
    worker.close()
    worker.close()
    with pytest.raises(RuntimeError):
        worker.submit("cam1", 0, np.zeros((8, 8, 3), np.uint8))
