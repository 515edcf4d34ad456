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
RERANK_MARGIN = 8    # candidates beyond k that FAISS proposes for the re-rank (NeighbourIndex.search)
RERANK_CHUNK = 256   # queries re-ranked at a time: 256 x (k + margin) x D differences held at once
SCAN_CHUNK = 1024    # bank rows at a time when one query is searched row by row
FLOAT32_ROUNDOFF = 2.0 ** -24
UNIT_ROUNDOFF = {torch.bfloat16: 2.0 ** -8, torch.float32: FLOAT32_ROUNDOFF}
# candidates beyond k the torch product proposes: enough for the rounding bound to clear (NeighbourIndex gives
# the figures for bfloat16; float32's bound, 0.0013, cleared at 8 on every demo frame)
PROPOSAL_MARGIN = {torch.bfloat16: 64, torch.float32: 8}


def faiss_has_gpu() -> bool:
    return faiss is not None and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _use_faiss(backend: str) -> bool:
    """Whether an index built with `backend` ("auto": FAISS where installed) searches with FAISS."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown index backend {backend!r}; choose from {BACKENDS}")
    if backend == "faiss" and faiss is None:
        raise ImportError("faiss is not installed: pip install 'nero-monitor[cpu]' (or [gpu])")
    return backend != "torch" and faiss is not None


def row_distances(queries: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """N x M squared distances sum((b - q)^2) from N queries (N x D) to their own M rows each (N x M x D,
    overwritten), each summed alone: the same rounding whatever N and M."""
    return rows.sub_(queries[:, None, :]).square_().sum(dim=2)


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


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 matrices in hardware (a CPU with AVX512-BF16 or AMX): elsewhere
    a bfloat16 product is emulated and slower than float32."""
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


class NeighbourIndex:
    """Exact L2 index over a bank of vectors; `search(queries, k)`: each query's k nearest rows, queries' device.

    Exact means: the k rows with the smallest sum((q - b)^2) in float32, computed row by row, ties broken by
    row, whatever the batch, thread count or backend. Computing that for every row would be slow, so a fast
    product proposes candidates and only they are re-ranked row by row:
    - torch (the CPU default): |q|^2 + |b|^2 - 2 q.b as one matrix product, in bfloat16 where the CPU
      multiplies it in hardware (`native_bfloat16`), float32 elsewhere. A rounding analysis bounds how far a
      proposed distance can lie from the re-ranked one (`_error_bound`); a query whose k-th re-ranked
      distance is not clear of the best unproposed row by that bound is searched row by row over the whole
      bank, so the answer is exact either way (the bound is 0.025 in squared distance; none of the demo
      clip's 1,875 frames needed the row-by-row search, smallest clearance 0.041, nor any of the 900
      Kvasir-SEG images, the OOD folders, black, white, grey and noise frames: 0.033 at the least, a
      natural photo).
    - FAISS (on a GPU FAISS can use, or `backend="faiss"`): its float32 search proposes k + RERANK_MARGIN.
    The bank is 60 MB (5,884 x 2,560, relevance-kNN's) and too big for the caches, so a float32 product of
    16 queries was bound by reading it; bfloat16 halves that. After a forward pass, as in the score stage,
    the search of 16 frames took 11.9 ms in float32 and 7.0 ms in bfloat16 (standalone 6.5 and 3.6 ms; one
    frame 1.7 and 1.5 ms; 2-core CPU with AMX). Before this, the re-rank alone had made the answer exact:
    a matrix product's rounding depends on the batch size and thread count, and that had swapped a near
    tie at rank k between `nero archive`'s one-thread workers and `nero replay`, and with it the explanation.
    """

    def __init__(self, bank: torch.Tensor, backend: str = "auto", proposal_dtype: torch.dtype | None = None) -> None:
        """`proposal_dtype`: the torch product's dtype (None: bfloat16 where native, else float32)."""
        self.bank = bank.float().contiguous()
        self._squared_norms = self.bank.square().sum(dim=1)
        self._max_norm = float(self._squared_norms.max().sqrt()) if len(self.bank) else 0.0
        on_faiss_gpu = self.bank.is_cuda and faiss_has_gpu()
        use_faiss = _use_faiss(backend) and (backend == "faiss" or on_faiss_gpu)
        self._index = FlatIndex(self.bank, faiss.METRIC_L2) if use_faiss else None
        if proposal_dtype is None:
            proposal_dtype = torch.bfloat16 if native_bfloat16(self.bank.device) else torch.float32
        if proposal_dtype not in UNIT_ROUNDOFF:
            raise ValueError(f"proposal_dtype must be one of {list(UNIT_ROUNDOFF)}, got {proposal_dtype}")
        self.proposal_dtype = proposal_dtype
        self._proposal_bank = None if use_faiss else self.bank.to(proposal_dtype)

    @property
    def description(self) -> str:
        if self._index is None:
            return f"torch-{str(self.proposal_dtype).removeprefix('torch.')}"
        return "faiss-gpu" if self._index.on_gpu else "faiss-cpu"

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances N x k, ascending, and bank rows N x k) of each query's k nearest, on its device."""
        queries = queries.float().contiguous()
        size = len(self.bank)
        if self._index is not None:
            candidates = self._index.search(queries, min(k + RERANK_MARGIN, size))[1].long()
            squared, rows = self._rerank(queries, candidates, k)
            return squared.sqrt(), rows
        count = min(k + PROPOSAL_MARGIN[self.proposal_dtype], size)
        proposed, candidates = self._propose(queries, min(count + 1, size))
        squared, rows = self._rerank(queries, candidates[:, :count], k)
        if count < size:   # else every row was re-ranked
            clear = proposed[:, count] - self._error_bound(queries) > squared[:, -1]
            for query in torch.nonzero(~clear).flatten().tolist():
                squared[query], rows[query] = self._scan(queries[query], k)
        return squared.sqrt(), rows

    def _propose(self, queries: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """N x count proposed squared distances, ascending, and their bank rows."""
        bank = self._proposal_bank.to(queries.device)
        norms = self._squared_norms.to(queries.device)
        values, found = [], []
        for chunk in queries.split(QUERY_CHUNK):
            products = (chunk.to(bank.dtype) @ bank.T).float()
            squared = torch.add(norms, products, alpha=-2.0).add_(chunk.square().sum(dim=1, keepdim=True))
            best = squared.topk(count, dim=1, largest=False)
            values.append(best.values)
            found.append(best.indices)
        return torch.cat(values), torch.cat(found)

    def _error_bound(self, queries: torch.Tensor) -> torch.Tensor:
        """Per query, the most a proposed squared distance can differ from the re-ranked one (standard
        rounding error bounds, D the dimension and u the proposal dtype's unit roundoff): the product's
        inputs and output rounded, ((1 + u)^3 - 1) |q||b|, twice; float32 sums of D terms, D 2^-24 each of
        |q||b|, |q|^2 + |b|^2 and the re-ranked (|q| + |b|)^2; a few last additions."""
        unit = UNIT_ROUNDOFF[self.proposal_dtype]
        sums = self.bank.shape[1] * FLOAT32_ROUNDOFF / (1 - self.bank.shape[1] * FLOAT32_ROUNDOFF)
        query_norms, bank_norm = queries.norm(dim=1), self._max_norm
        cross = 2 * ((1 + unit) ** 3 - 1 + sums * (1 + unit) ** 2) * query_norms * bank_norm
        return cross + sums * (query_norms ** 2 + bank_norm ** 2) + \
            (sums + 6 * FLOAT32_ROUNDOFF) * (query_norms + bank_norm) ** 2

    def _rerank(self, queries: torch.Tensor, candidates: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(squared distances N x k, rows N x k): the candidates' distances recomputed row by row, sorted by
        distance, then by row."""
        bank = self.bank.to(queries.device)
        squared, rows = [], []
        for chunk, proposed in zip(queries.split(RERANK_CHUNK), candidates.split(RERANK_CHUNK), strict=True):
            proposed = proposed.sort(dim=1).values          # row order first: equal distances keep it
            found, order = row_distances(chunk, bank.index_select(0, proposed.flatten()).view(*proposed.shape, -1)
                                         ).sort(dim=1, stable=True)
            squared.append(found[:, :k])
            rows.append(proposed.gather(1, order[:, :k]))
        return torch.cat(squared), torch.cat(rows)

    def _scan(self, query: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One query against every row, row by row (a query the proposal could not settle)."""
        bank = self.bank.to(query.device)
        found = torch.cat([row_distances(query[None], block[None].clone())[0] for block in bank.split(SCAN_CHUNK)])
        found, order = found.sort(stable=True)
        return found[:k], order[:k]

    def kth_distance(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        return self.search(queries, k)[0][:, k - 1]
