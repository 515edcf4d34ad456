"""Nearest class centroid under the L1 metric.

FAISS does the search (`GpuIndexFlat` when the query is on a CUDA device and faiss was built with GPU support,
`IndexFlat` otherwise, both with METRIC_L1); plain torch is the fallback when faiss is not installed, and
`backend="torch"` forces it. All backends return the same class and distance (tests/pipeline/test_centroid_index.py).
"""

from __future__ import annotations

import torch

try:
    import faiss
    import faiss.contrib.torch_utils  # noqa: F401  (lets FAISS indexes take torch tensors, CPU and CUDA)
except ImportError:  # pragma: no cover - exercised only where faiss is absent
    faiss = None

BACKENDS = ("auto", "faiss", "torch")


def faiss_has_gpu() -> bool:
    return faiss is not None and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class CentroidIndex:
    """A small exact L1 index over C centroids; `search(x)` -> (distance N, nearest index N), on x's device."""

    def __init__(self, centroids: torch.Tensor, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown index backend {backend!r}; choose from {BACKENDS}")
        if backend == "faiss" and faiss is None:
            raise ImportError("faiss is not installed: pip install 'nero-monitor[cpu]' (or [gpu])")
        self.centroids = centroids.float().contiguous()
        self.backend = "faiss" if backend == "auto" and faiss is not None else backend
        if self.backend == "auto":
            self.backend = "torch"
        self._cpu_index = None
        self._gpu_index = None
        if self.backend == "faiss":
            self._cpu_index = faiss.IndexFlat(self.centroids.shape[1], faiss.METRIC_L1)
            self._cpu_index.add(self.centroids.cpu())
            if self.centroids.is_cuda and faiss_has_gpu():
                self._gpu_resources = faiss.StandardGpuResources()
                config = faiss.GpuIndexFlatConfig()
                config.device = self.centroids.device.index or 0
                self._gpu_index = faiss.GpuIndexFlat(self._gpu_resources, self.centroids.shape[1],
                                                     faiss.METRIC_L1, config)
                self._gpu_index.add(self.centroids)

    @property
    def description(self) -> str:
        if self.backend == "torch":
            return "torch"
        return "faiss-gpu" if self._gpu_index is not None else "faiss-cpu"

    def search(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        queries = queries.float().contiguous()
        if self.backend == "torch":
            distances = torch.cdist(queries, self.centroids.to(queries.device), p=1)
            best = distances.min(dim=1)
            return best.values, best.indices
        if queries.is_cuda and self._gpu_index is not None:
            distance, nearest = self._gpu_index.search(queries, 1)
        else:
            distance, nearest = self._cpu_index.search(queries.cpu(), 1)
        return distance[:, 0].to(queries.device), nearest[:, 0].to(queries.device)
