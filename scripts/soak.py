"""Soak: `nero live` for a long run whose source drops every 30 s, with a normal and a slow subscriber.

    python scripts/soak.py --minutes 10 --out soak/       # the figures of docs/RELIABILITY.md

The source is a real network stream: an MPEG-TS server on 127.0.0.1 that sends the demo clip at 25 fps and
is killed (SIGKILL, no goodbye) every --drop-every seconds, then started again, so the monitor sees the
stream break and reconnects with its backoff. Two subscribers run as processes of their own: `nero subscribe`
(normal: it keeps up and records everything) and a slow one that reads 4 messages a second. Every 5 s the
monitor's RSS is sampled. At the end the monitor is stopped with SIGINT and the script checks what a user
relies on: every frame message the monitor published is in the audit and reached the normal subscriber,
gapless; and reports RSS, latency (t_publish - t_capture) per minute, drops, reconnections and what the slow
subscriber saw. Exit status 1 if a check fails.
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
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
log = logging.getLogger("soak")

TS_SERVER = r"""
import sys, time, av
url, clip = sys.argv[1], sys.argv[2]
with av.open(clip) as source:
    images = [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
out = av.open(url + "?listen=1", mode="w", format="mpegts", options={"flush_packets": "1"})
stream = out.add_stream("libx264", rate=25)
stream.height, stream.width = images[0].shape[:2]
stream.pix_fmt = "yuv420p"
stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
start, i = time.perf_counter(), 0
while True:
    frame = av.VideoFrame.from_ndarray(images[i % len(images)], format="rgb24")
    frame.pts = i
    out.mux(stream.encode(frame))
    i += 1
    time.sleep(max(0.0, start + i / 25 - time.perf_counter()))
"""

SLOW_SUBSCRIBER = r"""
import json, sys, time
from pipeline.client import AlertSubscriber
endpoint, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
stale = frames = 0
with AlertSubscriber(endpoint, topics=("alert.",), max_lag_s=2.0) as subscriber:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        message = subscriber.receive(timeout_s=1.0)
        if message is not None:
            frames += 1
            stale += subscriber.stale
        time.sleep(0.25)
    json.dump({"frames": frames, "stale": stale, "missing": subscriber.missing, "gaps": len(subscriber.gaps)},
              open(out, "w"))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def frames_of(path: Path) -> list[dict]:
    messages = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [message for message in messages if message.get("type") == "frame"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--drop-every", type=float, default=30.0, help="seconds between source drops")
    parser.add_argument("--clip", type=Path, default=REPO / "scripts" / "demo" / "clip.mp4")
    parser.add_argument("--out", type=Path, default=Path("soak"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    audit, normal, slow, metrics = (args.out / name for name in
                                    ("audit.jsonl", "normal.jsonl", "slow.json", "metrics.json"))
    for path in (audit, normal, slow, metrics):
        path.unlink(missing_ok=True)
    seconds = args.minutes * 60
    source, endpoint = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    python = sys.executable

    def serve() -> subprocess.Popen:
        return subprocess.Popen([python, "-c", TS_SERVER, source, str(args.clip)], env=ENV,
                                stderr=subprocess.DEVNULL)

    server = serve()
    subscriber = subprocess.Popen([python, "-m", "pipeline", "subscribe", endpoint, "--jsonl", str(normal)],
                                  env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    laggard = subprocess.Popen([python, "-c", SLOW_SUBSCRIBER, endpoint, str(seconds), str(slow)], env=ENV)
    time.sleep(1.0)
    monitor = subprocess.Popen([python, "-m", "pipeline", "live", f"cam={source}", "--publish", endpoint,
                                "--jsonl", str(audit), "--metrics-json", str(metrics)], env=ENV,
                               stderr=(args.out / "monitor.log").open("w"))
    started, samples, drops = time.monotonic(), [], 0
    next_drop = started + args.drop_every
    try:
        while time.monotonic() - started < seconds:
            time.sleep(5.0)
            samples.append((time.monotonic() - started, rss_mb(monitor.pid)))
            if monitor.poll() is not None:
                raise SystemExit(f"the monitor exited early ({monitor.returncode}); see {args.out}/monitor.log")
            if time.monotonic() >= next_drop:
                server.kill()
                server.wait()
                drops += 1
                server = serve()
                next_drop += args.drop_every
            log.info("%.0f s: monitor RSS %.0f MB, %d source drops", *samples[-1], drops)
    finally:
        monitor.send_signal(signal.SIGINT)
        monitor.wait(120)
        server.kill()
        laggard.wait(60)
        time.sleep(4.0)                         # the normal subscriber receives the stop event and the rest
        subscriber.send_signal(signal.SIGTERM)
        subscriber.wait(60)

    cam = json.loads(metrics.read_text())["streams"]["cam"]
    published = cam["frames"]
    audited, received = frames_of(audit), frames_of(normal)
    seqs = [message["seq"] for message in received]
    events = Counter(json.loads(line).get("event") for line in audit.read_text().splitlines())
    latency = np.array([m["t_publish"] - m["t_capture"] for m in audited]) * 1e3
    minute = ((np.array([m["t_capture"] for m in audited]) - audited[0]["t_capture"]) // 60).astype(int)
    rss = np.array([value for _, value in samples])
    figures = {
        "minutes": args.minutes, "source_drops": drops, "reconnecting_events": events["reconnecting"],
        "published_frames": published, "audit_frames": len(audited), "normal_subscriber_frames": len(received),
        "normal_subscriber_gapless": seqs == list(range(len(seqs))),
        "frames_dropped_live": cam["drops"],
        "rss_mb": {"first": float(rss[0]), "max": float(rss.max()), "last": float(rss[-1])},
        "latency_ms_per_minute": {int(k): {"p50": float(np.percentile(latency[minute == k], 50)),
                                           "p99": float(np.percentile(latency[minute == k], 99))}
                                  for k in np.unique(minute)},
        "slow_subscriber": json.loads(slow.read_text()) if slow.exists() else None,
        "monitor_exit": monitor.returncode,
    }
    (args.out / "figures.json").write_text(json.dumps(figures, indent=1))
    log.info("%s", json.dumps(figures, indent=1))
    ok = published == len(audited) == len(received) and figures["normal_subscriber_gapless"]
    log.info("published == audit == normal subscriber, gapless: %s", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
