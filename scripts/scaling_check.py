"""The figures of docs/SCALING.md, measured on this machine.

    python scripts/scaling_check.py archive --clip scripts/demo/clip.mp4 --copies 6 --seconds 20
        the same recordings through `nero archive` with 1 and 2 local workers and on a local Ray cluster:
        wall time, recordings per hour, hours of video per hour
    python scripts/scaling_check.py hub --publishers 4 --seconds 10
        `nero hub` relaying frame-sized messages (the size of a real frame message) from N publishers to one
        subscriber as fast as they go: messages per second through the proxy, and what that means in rooms
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import zmq

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
log = logging.getLogger("scaling_check")
ROOM_RATE = 25 + 1         # messages per second a 25 fps room sends (frames, a heartbeat; events are rare)


def cut(clip: Path, seconds: float, out: Path) -> Path:
    """The first `seconds` of `clip`, re-encoded (H.264)."""
    with av.open(str(clip)) as source, av.open(str(out), "w") as target:
        stream = source.streams.video[0]
        encoder = target.add_stream("libx264", rate=stream.average_rate)
        encoder.width, encoder.height, encoder.pix_fmt = stream.width, stream.height, "yuv420p"
        for frame in source.decode(stream):
            if frame.time is not None and frame.time >= seconds:
                break
            target.mux(encoder.encode(frame.reformat(format="yuv420p")))
        target.mux(encoder.encode(None))
    return out


def archive(args: argparse.Namespace) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="scaling-"))
    try:
        (folder / "in").mkdir()
        first = cut(args.clip, args.seconds, folder / "in" / "rec0.mp4")
        for i in range(1, args.copies):
            shutil.copy(first, folder / "in" / f"rec{i}.mp4")
        video_hours = args.copies * args.seconds / 3600
        results = {}
        for label, flags in (("1 worker", ["--workers", "1"]), ("2 workers", ["--workers", "2"]),
                             ("Ray, local cluster", ["--ray", "local"])):
            out = folder / label.replace(" ", "_").replace(",", "")
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "pipeline", "archive", str(folder / "in"), "--out", str(out),
                                   "--no-progress", *flags], capture_output=True, text=True, env=ENV)
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"{label}: {done.stderr}")
            rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
            results[label] = {"wall_s": round(wall, 1), "recordings_per_hour": round(args.copies / wall * 3600),
                              "video_hours_per_hour": round(video_hours / (wall / 3600), 2),
                              "frames": sum(row["frames"] for row in rows)}
            log.info("%s: %s", label, results[label])
        return {"recordings": args.copies, "seconds_each": args.seconds, "cpus": os.cpu_count(), **results}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _publish(endpoint: str, seconds: float, payload: bytes, name: str) -> None:
    context = zmq.Context()
    sender = context.socket(zmq.PUB)
    sender.setsockopt(zmq.SNDHWM, 100_000)
    sender.connect(endpoint)
    time.sleep(1.0)                         # the subscription reaches us through the hub
    end = time.perf_counter() + seconds
    topic = f"alert.{name}".encode()
    while time.perf_counter() < end:
        for _ in range(100):
            sender.send_multipart([topic, payload])
    sender.close(linger=2000)
    context.term()


def hub(args: argparse.Namespace) -> dict:
    payload = (REPO / "docs" / "schema" / "examples.jsonl").read_text().splitlines()[2].encode()   # a frame
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    inbound, outbound = (f"tcp://127.0.0.1:{port}" for port in ports)
    relay = subprocess.Popen([sys.executable, "-m", "pipeline", "hub", "--in", inbound, "--out", outbound],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    relay.stdout.readline()
    context = zmq.Context()
    subscriber = context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.RCVHWM, 1_000_000)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"alert.")
    subscriber.connect(outbound)
    time.sleep(0.5)
    publishers = [multiprocessing.Process(target=_publish, args=(inbound, args.seconds, payload, f"room{i}"))
                  for i in range(args.publishers)]
    for process in publishers:
        process.start()
    received, first, last = 0, None, None
    while any(p.is_alive() for p in publishers) or subscriber.poll(500):
        if subscriber.poll(100):
            subscriber.recv_multipart()
            received += 1
            last = time.perf_counter()
            first = first or last
    relay.send_signal(signal.SIGINT)
    relay.communicate(timeout=30)
    subscriber.close(0)
    context.term()
    rate = received / (last - first) if received > 1 else 0.0
    return {"publishers": args.publishers, "message_bytes": len(payload), "received": received,
            "messages_per_s": round(rate), "MB_per_s": round(rate * len(payload) / 1e6, 1),
            "rooms_at_25_fps": int(rate // ROOM_RATE), "cpus": os.cpu_count()}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("archive")
    one.add_argument("--clip", type=Path, default=REPO / "scripts" / "demo" / "clip.mp4")
    one.add_argument("--copies", type=int, default=6)
    one.add_argument("--seconds", type=float, default=20.0)
    two = sub.add_parser("hub")
    two.add_argument("--publishers", type=int, default=4)
    two.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    sys.stdout.write(json.dumps(archive(args) if args.what == "archive" else hub(args), indent=2) + "\n")


if __name__ == "__main__":
    main()
