"""Exact nearest-neighbour search for the detectors: class centroids under L1, training banks under L2.

Centroids: FAISS does the search (a `GpuIndexFlat` when the vectors are on a CUDA device and faiss was built
with GPU support, an `IndexFlat` otherwise). Banks: FAISS on such a GPU, one torch matrix product on the CPU,
which is several times faster there for the monitor's small batches (`NeighbourIndex`). Plain torch is the
fallback when faiss is not installed, and `backend="torch"` forces it; `backend="faiss"` forces FAISS. All
backends return the same answer (tests/pipeline/ood/test_index.py). `FlatIndex` is the one place a FAISS
index is built, on the CPU or the GPU.
"""

from __future__ import annotations

import torch

try:
    import faiss
    import faiss.contrib.torch_utils  # noqa: F401  (lets FAISS indexes take torch tensors, CPU and CUDA)

    # A flat CPU search of fewer queries than this threshold loops over the bank query by query; above it,
    # one BLAS matrix product. The monitor's batches (1-16 frames) were under it: relevance-kNN's search of
    # 16 frames against the 5,884-window bank took 22.3 ms that way, 9.2 ms by BLAS, same neighbours
    # (2-core CPU; torch's product, now the CPU default for banks, took 3.0 ms). A process-wide FAISS
    # setting, set here where every index is built.
    faiss.cvar.distance_compute_blas_threshold = 1
except ImportError:  # pragma: no cover - exercised only where faiss is absent
    faiss = None

BACKENDS = ("auto", "faiss", "torch")
QUERY_CHUNK = 4096   # torch search: queries per matrix product, so a large batch does not hold an N x M matrix
RERANK_MARGIN = 8    # candidates beyond k whose distances are recomputed exactly (NeighbourIndex.search)
RERANK_CHUNK = 256   # queries re-ranked at a time: 256 x (k + margin) x D differences held at once


def faiss_has_gpu() -> bool:
    return faiss is not None and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _use_faiss(backend: str) -> bool:
    """Whether an index built with `backend` ("auto": FAISS where installed) searches with FAISS."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown index backend {backend!r}; choose from {BACKENDS}")
    if backend == "faiss" and faiss is None:
        raise ImportError("faiss is not installed: pip install 'nero-monitor[cpu]' (or [gpu])")
    return backend != "torch" and faiss is not None


class FlatIndex:
    """An exact FAISS index over `vectors` (on their GPU when they are on one); `search` takes any device."""

    def __init__(self, vectors: torch.Tensor, metric: int) -> None:
        dim = vectors.shape[1]
        self.on_gpu = vectors.is_cuda and faiss_has_gpu()
        if self.on_gpu:
            self._resources = faiss.StandardGpuResources()
            config = faiss.GpuIndexFlatConfig()
            config.device = vectors.device.index or 0
            self._index = faiss.GpuIndexFlat(self._resources, dim, metric, config)
            self._index.add(vectors)
        else:
            self._index = faiss.IndexFlat(dim, metric)
            self._index.add(vectors.cpu())

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances N x k, indices N x k) on the queries' device (L2: squared distances, as FAISS gives)."""
        distance, nearest = self._index.search(queries if self.on_gpu and queries.is_cuda else queries.cpu(), k)
        return distance.to(queries.device), nearest.to(queries.device)


class CentroidIndex:
    """A small exact L1 index over C centroids; `search(x)` -> (distance N, nearest index N), on x's device."""

    def __init__(self, centroids: torch.Tensor, backend: str = "auto") -> None:
        self.centroids = centroids.float().contiguous()
        self._index = FlatIndex(self.centroids, faiss.METRIC_L1) if _use_faiss(backend) else None

    @property
    def description(self) -> str:
        if self._index is None:
            return "torch"
        return "faiss-gpu" if self._index.on_gpu else "faiss-cpu"

    def search(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        queries = queries.float().contiguous()
        if self._index is None:
            best = torch.cdist(queries, self.centroids.to(queries.device), p=1).min(dim=1)
            return best.values, best.indices
        distance, nearest = self._index.search(queries, 1)
        return distance[:, 0], nearest[:, 0]


class NeighbourIndex:
    """Exact L2 index over a bank of vectors; `kth_distance(queries, k)`: N distances, queries' device.

    On the CPU the search is one torch matrix product, |q|^2 + |b|^2 - 2 q.b (the expansion FAISS's own BLAS
    path computes), then a top-k. Against relevance-kNN's 5,884 x 2,560 bank it took 1.1 ms for one query
    and 3.0 ms for 16, where FAISS's `IndexFlat` took 5.4 and 7.6 ms (torch's `cdist`: 60 and 37 ms), with
    the same neighbours and distances within 3e-7 (2-core CPU): the monitor's live batches are 1 frame. With
    the exact re-ranking below, 1.3 and 4.9 ms.
    `backend="auto"` searches with FAISS where the bank is on a GPU FAISS can use; `"faiss"` everywhere.
    """

    def __init__(self, bank: torch.Tensor, backend: str = "auto") -> None:
        self.bank = bank.float().contiguous()
        self._squared_norms = self.bank.square().sum(dim=1)
        on_faiss_gpu = self.bank.is_cuda and faiss_has_gpu()
        use_faiss = _use_faiss(backend) and (backend == "faiss" or on_faiss_gpu)
        self._index = FlatIndex(self.bank, faiss.METRIC_L2) if use_faiss else None

    @property
    def description(self) -> str:
        if self._index is None:
            return "torch"
        return "faiss-gpu" if self._index.on_gpu else "faiss-cpu"

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances N x k, ascending, and bank rows N x k) of each query's k nearest, on its device.

        The fast search proposes `k + RERANK_MARGIN` candidates; their distances are then recomputed row by
        row, sum((q - b)^2), and sorted by distance, then by row. A matrix product's rounding
        depends on the batch size and the thread count (2.4e-7 here), and that had let a near tie at rank k
        swap neighbours between two runs of the same frame (`nero archive`'s one-thread workers against
        `nero replay`), and with the neighbour the explanation. Recomputed so, a frame gets the same
        neighbours in a live batch of 1, a replay batch of 16 and an archive worker, with either backend.
        It costs 0.2 ms for one query and 1.9 ms for 16 against the 5,884-row bank (2-core CPU).
        """
        queries = queries.float().contiguous()
        candidates = self._candidates(queries, min(k + RERANK_MARGIN, len(self.bank)))
        bank = self.bank.to(queries.device)
        distances, rows = [], []
        for chunk, proposed in zip(queries.split(RERANK_CHUNK), candidates.split(RERANK_CHUNK), strict=True):
            proposed = proposed.sort(dim=1).values          # row order first: equal distances keep it
            squared = (chunk[:, None, :] - bank[proposed]).square().sum(dim=2)
            squared, order = squared.sort(dim=1, stable=True)
            distances.append(squared[:, :k].sqrt())
            rows.append(proposed.gather(1, order[:, :k]))
        return torch.cat(distances), torch.cat(rows)

    def _candidates(self, queries: torch.Tensor, count: int) -> torch.Tensor:
        """N x count bank rows, nearest first, up to rounding."""
        if self._index is not None:
            return self._index.search(queries, count)[1].long()
        bank = self.bank.to(queries.device)
        norms = self._squared_norms.to(queries.device)
        found = []
        for chunk in queries.split(QUERY_CHUNK):
            squared = torch.addmm(norms, chunk, bank.T, alpha=-2.0).add_(chunk.square().sum(dim=1, keepdim=True))
            found.append(squared.topk(count, dim=1, largest=False).indices)
        return torch.cat(found)

    def kth_distance(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        return self.search(queries, k)[0][:, k - 1]
