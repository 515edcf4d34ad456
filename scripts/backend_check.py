"""The backend and allocator table of docs/PERFORMANCE.md: the bare forward pass (features and logits) of the
configured model, torch eager against OpenVINO, with glibc as it is and tuned, at batch 1 and 16.

    python scripts/backend_check.py --seconds 8 --rounds 2

Each measurement runs in a process of its own (the allocator setting is process-wide and must come before
torch allocates anything), and the configurations alternate round by round, so a change in the machine's
load falls on all of them alike.
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

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("backend_check")


def measure(backend: str, tuned: bool, batch: int, seconds: float) -> float:
    """Images per second of one configuration, in this process."""
    if tuned:
        from pipeline.cli.allocator import tune_allocator
        tune_allocator()
    import torch

    from pipeline.config import DEFAULT_CONFIG, load_config
    from pipeline.model.bundle import load_bundle

    config = load_config(DEFAULT_CONFIG)
    config.device, config.model.backend = "cpu", backend
    bundle = load_bundle(config)
    forward = bundle.forward or bundle.classifier
    inputs = torch.randn(batch, 3, config.preprocess.size, config.preprocess.size)
    with torch.no_grad():
        for _ in range(2):
            forward(inputs)
        started, images = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            forward(inputs)
            images += batch
    return images / (time.perf_counter() - started)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", nargs=3, metavar=("BACKEND", "TUNED", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        backend, tuned, batch = args.one
        sys.stdout.write(f"{measure(backend, tuned == '1', int(batch), args.seconds)}\n")
        return
    env = {**os.environ, "PYTHONPATH": str(REPO)}   # not through the CLI: nothing tunes the allocator but --one
    results: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for batch in (1, 16):
            for backend in ("torch", "openvino"):
                for tuned in ("0", "1"):
                    done = subprocess.run([sys.executable, __file__, "--seconds", str(args.seconds), "--one",
                                           backend, tuned, str(batch)], capture_output=True, text=True, env=env,
                                          check=True)
                    key = f"{backend} {'tuned' if tuned == '1' else 'glibc'} batch {batch}"
                    results.setdefault(key, []).append(round(float(done.stdout.strip().splitlines()[-1]), 1))
                    log.info("round %d: %s %s img/s", round_ + 1, key, results[key][-1])
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
