"""`nero live --metrics-port`: Prometheus scrapes /metrics while the monitor runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[3]


def scrape(port: int) -> dict[tuple[str, str], float] | None:
    """(sample name, stream label) -> value; None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    return {(sample.name, sample.labels.get("stream", "")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name.startswith("nero_") and "le" not in sample.labels}


def test_metrics_are_scraped_during_a_live_run(alert_clip, monitor_config_file):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "live", f"endo={alert_clip}", "--config",
                                str(monitor_config_file), "--publish", "tcp://127.0.0.1:*", "--metrics-port",
                                str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    scrapes = []
    while process.poll() is None:
        figures = scrape(port)
        if figures is not None:
            scrapes.append(figures)
        time.sleep(0.25)
    _, err = process.communicate()
    assert process.returncode == 0, err
    assert f"metrics on http://127.0.0.1:{port}/metrics" in err
    frames = [s[("nero_frames_total", "endo")] for s in scrapes]
    assert len(scrapes) >= 4 and frames == sorted(frames) and frames[-1] > 100   # counting up as it runs
    last = scrapes[-1]
    assert last[("nero_end_to_end_latency_seconds_count", "endo")] == frames[-1]   # one latency per frame
    assert 0 < last[("nero_end_to_end_latency_seconds_sum", "endo")] / frames[-1] < 5
    assert max(s[("nero_alerts_total", "endo")] for s in scrapes) == 1            # the chest X-ray segment
    assert last[("nero_ood_frames_total", "endo")] > 0
    assert ("nero_dropped_frames_total", "endo") in last and ("nero_frame_queue_depth", "endo") in last
    assert ("nero_result_queue_depth", "") in last
