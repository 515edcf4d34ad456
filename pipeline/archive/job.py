"""One recording through the monitor, losslessly: the one implementation that local workers and Ray actors run.

The replay is `nero replay`'s: the same `Runner`, the same settings, so the audit holds the same messages
(their times aside). It publishes on an in-process endpoint that nobody subscribes to: an archive's product
is its files. A recording that cannot be opened or breaks mid-way gives an error row and leaves no complete
output; it never stops the other recordings.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.archive.plan import Recording, partial
from pipeline.errors import UserError
from pipeline.media.video import SourceError, stream_name
from pipeline.model.bundle import Bundle
from pipeline.ood.truth import AlertOutcome, Truth, truth_path
from pipeline.stream.runner import Runner, RunOptions, RunSettings, StreamSpec, open_stream


def replay_recording(bundle: Bundle, settings: RunSettings, recording: Recording, out: Path) -> dict[str, Any]:
    """Replay one recording into OUT; its index row (status done or error)."""
    audit, summary = recording.audit(out), recording.summary(out)
    started = time.time()
    row: dict[str, Any] = {"recording": str(recording.path), "name": recording.name, "status": "error",
                           "frames": None, "alerts": None, "seconds": None, "fps": None, "false_alarms": None,
                           "missed": None, "mean_delay_s": None, "error": "", "audit": audit.name,
                           "worker": f"{os.uname().nodename}:{os.getpid()}"}
    for path in (audit, summary, partial(audit), partial(summary)):
        path.unlink(missing_ok=True)
    try:
        stream = stream_name(str(recording.path))     # as `nero replay` names it: the same messages
        source = open_stream(str(recording.path), stream, settings.stream, str(bundle.device))
        runner = Runner(bundle, [StreamSpec(stream, str(recording.path), source)],
                        RunOptions(endpoint=f"inproc://archive-{uuid.uuid4().hex}", jsonl=partial(audit)), settings)
        report = runner.run()
        if report.errors:
            raise SourceError("; ".join(report.errors))
        figures = {"frames": report.frames[stream], "alerts": report.alerts[stream],
                   "seconds": round(time.time() - started, 3), "fps": report.metrics.get("fps")}
        truth = truth_outcome(recording.path, partial(audit), source.info.get("fps") or 25.0)
    except (SourceError, UserError, OSError) as error:
        row["error"] = str(error).replace("\n", " ")
        row["seconds"] = round(time.time() - started, 3)
        return row
    row.update(figures, status="done", **truth)
    partial(audit).rename(audit)
    document = {**row, "metrics": report.metrics, "started": round(started, 3), "finished": round(time.time(), 3)}
    partial(summary).write_text(json.dumps(document, indent=2) + "\n")
    partial(summary).rename(summary)
    return row


def truth_outcome(video: Path, audit: Path, fps: float) -> dict[str, Any]:
    """False alarms, misses and the mean delay against VIDEO.truth.csv; empty without one."""
    sidecar = truth_path(video)
    if not sidecar.is_file():
        return {}
    frames = [m for m in map(json.loads, audit.read_text().splitlines()) if m.get("type") == "frame"]
    truth = Truth.read(sidecar).at([m["frame"] for m in frames])
    outcome = AlertOutcome.of(np.array([m["alert"] for m in frames], dtype=bool), truth, fps)
    return {"false_alarms": len(outcome.false_alarms), "missed": len(outcome.missed),
            "mean_delay_s": None if outcome.mean_delay_s is None else round(outcome.mean_delay_s, 3)}
