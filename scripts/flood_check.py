"""A subscription flood against a live monitor, measured side by side with the same run without it.

    python scripts/flood_check.py                       # 2 rounds of 20 s, the demo clip as a camera
    python scripts/flood_check.py --flood tcp://127.0.0.1:5556 15    # only flood that endpoint for 15 s

Anyone who reaches the monitor's port can send subscribe frames; the flooder here sends distinct ones (the
worst case: each is new to ZeroMQ) as fast as one Python process can, as the reliability issue's attacker
did (3.8 M in 15 s). Each round runs `nero live` on the clip twice, without and with the flood in the middle
of the run, in alternating order; a subscriber in this process measures, over the flood's window only, the
end-to-end latency of each frame message (receipt - t_capture), the longest silence between two of them and
the frames per second; the monitor's RSS is sampled. The ratios flood / no flood are what docs/RELIABILITY.md
reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import zmq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.client import AlertSubscriber  # noqa: E402

log = logging.getLogger("flood_check")
WARMUP_S = 8.0          # the model loads and the first batches pass before the window opens


def flood(endpoint: str, seconds: float) -> int:
    """Send distinct subscribe frames to `endpoint` for `seconds`; returns how many were sent."""
    context = zmq.Context()
    sender = context.socket(zmq.XSUB)
    sender.setsockopt(zmq.SNDHWM, 0)
    sender.connect(endpoint)
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(1000):
            sender.send(b"\x01" + os.urandom(8).hex().encode())
        sent += 1000
    sender.close(0)
    context.term()
    return sent


def free_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_run(clip: Path, seconds: float, flooded: bool, config: Path | None) -> dict:
    """`nero live` on `clip`; over `seconds` after the warm-up (flooded or not): what a subscriber saw."""
    endpoint = free_endpoint()
    command = [sys.executable, "-m", "pipeline", "live", f"cam={clip}", "--publish", endpoint]
    command += ["--config", str(config)] if config else []
    monitor = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    latencies, arrivals, rss, sent = [], [], [], [0]
    try:
        with AlertSubscriber(endpoint, topics=("alert.",)) as subscriber:
            start = time.monotonic()
            while time.monotonic() - start < WARMUP_S:
                subscriber.receive(timeout_s=0.5)
            flooder = threading.Thread(target=lambda: sent.__setitem__(0, flood(endpoint, seconds)))
            if flooded:
                flooder.start()
            end, next_sample = time.monotonic() + seconds, 0.0
            while time.monotonic() < end:
                if time.monotonic() >= next_sample:
                    rss.append(rss_mb(monitor.pid))
                    next_sample = time.monotonic() + 0.5
                message = subscriber.receive(timeout_s=0.1)
                if message is not None and message["type"] == "frame":
                    now = time.time()
                    latencies.append(now - message["t_capture"])
                    arrivals.append(now)
            if flooded:
                flooder.join()
    finally:
        monitor.send_signal(signal.SIGINT)
        _, err = monitor.communicate(timeout=60)
    if not latencies:
        raise SystemExit(f"the monitor published nothing:\n{err[-2000:]}")
    gaps = np.diff(arrivals) if len(arrivals) > 1 else np.array([seconds])
    return {"flooded": flooded, "subscribe_frames_sent": sent[0], "frames": len(latencies),
            "fps": len(latencies) / seconds, "latency_p50_ms": float(np.percentile(latencies, 50) * 1e3),
            "latency_p99_ms": float(np.percentile(latencies, 99) * 1e3), "longest_silence_s": float(gaps.max()),
            "rss_growth_mb": float(max(rss) - rss[0]), "monitor_exit": monitor.returncode,
            "monitor_warned": "is flooding it" in err}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=REPO / "scripts" / "demo" / "clip.mp4")
    parser.add_argument("--config", type=Path, help="monitor config (default: the bundled one)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the measured window")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--flood", nargs=2, metavar=("ENDPOINT", "SECONDS"), help="only flood ENDPOINT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.flood:
        log.info("sent %d subscribe frames", flood(args.flood[0], float(args.flood[1])))
        return 0
    runs = []
    for round_ in range(args.rounds):
        for flooded in ((False, True) if round_ % 2 == 0 else (True, False)):
            runs.append(one_run(args.clip, args.seconds, flooded, args.config))
            log.info("%s", json.dumps(runs[-1]))
    by = {flag: [run for run in runs if run["flooded"] == flag] for flag in (False, True)}

    def median(flag: bool, key: str) -> float:
        return float(np.median([run[key] for run in by[flag]]))

    for key in ("latency_p50_ms", "latency_p99_ms", "fps", "longest_silence_s", "rss_growth_mb"):
        log.info("%-18s no flood %9.1f   flood %9.1f   ratio %.2f", key, median(False, key), median(True, key),
                 median(True, key) / max(median(False, key), 1e-9))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
