"""Where the recordings run: worker processes on this machine, or actors on a Ray cluster. Each worker holds one
model (loaded once) and replays recordings one after another through `job.replay_recording`; the driver
only hands out recordings and collects their rows, so the outputs are the same either way.

- local (`--workers N`, default 1): N spawned processes (1: this process), each with cores / N torch threads,
  so N workers never fight over the same cores;
- Ray (`--ray local | auto | ADDRESS`): one actor per GPU where the cluster has GPUs, else `--workers` actors
  (default: the cluster's CPUs / 2), handed recordings by `ray.util.ActorPool` as each finishes. The actors
  write into OUT, which must be a path every node sees (shared storage); `local` starts a one-node cluster
  on this machine (127.0.0.1, no dashboard), `auto` joins the one `ray start` runs here, ADDRESS another.
  Ray is the optional extra `nero-monitor[ray]`, imported only here.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from pipeline.archive.job import replay_recording
from pipeline.archive.plan import Recording
from pipeline.config import Config
from pipeline.errors import UserError

log = logging.getLogger(__name__)

_worker: Worker | None = None   # the model of this worker process


class Worker:
    """One model, many recordings."""

    def __init__(self, config: Config, threads: int) -> None:
        import torch

        from pipeline.model.bundle import load_bundle
        from pipeline.stream.runner import RunSettings

        torch.set_num_threads(threads)
        logging.getLogger("pipeline").setLevel(logging.WARNING)   # the driver reports; a worker only warns
        self.bundle, self.settings = load_bundle(config), RunSettings.of(config)

    def replay(self, recording: Recording, out: str) -> dict[str, Any]:
        return replay_recording(self.bundle, self.settings, recording, Path(out))


def _start_worker(config: Config, threads: int) -> None:
    global _worker
    _worker = Worker(config, threads)


def _replay_here(recording: Recording, out: str) -> dict[str, Any]:
    return _worker.replay(recording, out)


def local_rows(recordings: list[Recording], out: Path, config: Config, workers: int) -> Iterator[dict[str, Any]]:
    """Rows as the recordings finish, on `workers` local processes."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    if workers == 1:
        worker = Worker(config, threads)
        for recording in recordings:
            yield worker.replay(recording, str(out))
        return
    context = multiprocessing.get_context("spawn")   # torch and ZeroMQ threads do not survive a fork
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(config, threads)) as pool:
        futures = [pool.submit(_replay_here, recording, str(out)) for recording in recordings]
        for future in as_completed(futures):
            yield future.result()


def ray_rows(recordings: list[Recording], out: Path, config: Config, workers: int | None,
             address: str) -> Iterator[dict[str, Any]]:
    """Rows as the recordings finish, on Ray actors."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'nero-monitor[ray]'") from None
    if address == "local":
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
    else:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise UserError(f"cannot join the Ray cluster at {address}: {error}") from None
    try:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        count = gpus or workers or max(1, cpus // 2)
        threads = max(1, cpus // count)
        actor = ray.remote(Worker).options(num_gpus=1 if gpus else 0, num_cpus=threads)
        log.info("Ray: %d actor(s) (%s), %d CPU and %d GPU in the cluster", count,
                 "one per GPU" if gpus else f"{threads} threads each", cpus, gpus)
        pool = ActorPool([actor.remote(config, threads) for _ in range(count)])
        yield from pool.map_unordered(lambda worker, recording: worker.replay.remote(recording, str(out)),
                                      recordings)
    finally:
        ray.shutdown()
