"""The one prepared run for a lent GPU machine: checks and times everything in one call, writes it to OUT.

    python scripts/gpu_check.py --out "$OUT"                 # on the device (run tool); ~5 minutes
    python scripts/gpu_check.py --out /tmp/g --frames 64 --rounds 1 --device cpu   # a dry run on the CPU

What it does, in order, each step's result written as it finishes (a step that fails is recorded, the others
still run):
1. the card (name, memory, driver), torch's CUDA, whether FAISS has GPUs, whether PyAV decodes with NVDEC;
2. the index tests of the suite, whose CUDA case (FAISS GPU against CPU, same answers) skips without a GPU;
3. `nero bench` on the demo clip (480p) and on a 1080p H.264 cut of it, on `--device` (config `device`):
   the monitor against decode-only, the bare forward and the naive loop, side by side.
Numbers for docs/PERFORMANCE.md, with the card named; the many-stream NVDEC path is not written yet
(issue 12), so this measures the single-stream CUDA path that exists. The device image lacks PyAV and pyzmq,
and the tree leaves about 9 MB of a call's transfer for them: docs/PERFORMANCE.md ("What stands between that
script and a device") says how to bring them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
log = logging.getLogger("gpu_check")


def facts() -> dict:
    import av
    import torch

    from pipeline.ood.index import faiss_has_gpu

    found = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "faiss_gpu": faiss_has_gpu(),
             "pyav_hwaccels": list(getattr(av.codec.hwaccel, "hwdevices_available", lambda: [])())}
    if torch.cuda.is_available():
        found["card"] = torch.cuda.get_device_name(0)
        found["memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return found


def clip_1080p(out: Path, frames: int) -> Path:
    """The first `frames` frames of the demo clip scaled to 1920x1080, H.264."""
    import av
    import cv2

    path = out / "clip1080.mp4"
    with av.open(str(REPO / "scripts" / "demo" / "clip.mp4")) as source, av.open(str(path), "w") as target:
        stream = target.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for index, frame in enumerate(source.decode(video=0)):
            if index >= frames:
                break
            image = cv2.resize(frame.to_ndarray(format="rgb24"), (1920, 1080))
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = index
            target.mux(stream.encode(picture))
        target.mux(stream.encode(None))
    return path


def run(step: str, command: list[str], out: Path, results: dict) -> None:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=ENV)
    (out / f"{step}.log").write_text(done.stdout + done.stderr)
    results[step] = {"rc": done.returncode, "seconds": round(time.perf_counter() - started, 1)}
    log.info("%s: rc %d in %.0f s", step, done.returncode, results[step]["seconds"])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"facts": facts()}
    log.info("%s", results["facts"])
    config = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    config["device"] = args.device
    config["model"]["weights"] = str((REPO / "configs" / config["model"]["weights"]).resolve())
    config["artifact"] = str((REPO / "configs" / config["artifact"]).resolve())
    (args.out / "config.yaml").write_text(yaml.safe_dump(config))
    run("cuda-tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                       str(REPO / "tests" / "pipeline" / "ood" / "test_index.py")], args.out, results)
    clips = {"480p": REPO / "scripts" / "demo" / "clip.mp4", "1080p": clip_1080p(args.out, args.frames)}
    for name, clip in clips.items():
        run(f"bench-{name}", [sys.executable, "-m", "pipeline", "bench", str(clip), "--config",
                              str(args.out / "config.yaml"), "--frames", str(args.frames), "--rounds",
                              str(args.rounds), "--json", str(args.out / f"bench-{name}.json")], args.out, results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
