"""NERO: out-of-distribution score from neuron-level relevance at the feature layer.

Chhetri, Korhonen, Gyawali, Bhattarai, "NERO: Explainable Out-of-Distribution Detection with Neuron-level
Relevance", MICCAI 2025 (arXiv 2506.15404). Computed as the authors' reference code does (docs: NERO.md).

For penultimate features a (D), head W (C x D), b (C), logits f = W a + b, p = softmax(f):

    R[k] = a[k] * sum_j p[j] W[j,k] / f[j]      (k = 1..D, LRP-0 from all class probabilities)
    R_b  =        sum_j p[j] b[j]   / f[j]      (the bias as one more neuron; sum R + R_b = 1)
    d    = min_c || PCA(R) - centroid_c ||_1     (one centroid per class, PCA to int(2D/3), fitted on ID train)
    rho  = sum_{k in S} |a[k]| / sum_k |a[k]|    (S = the k neurons with the smallest relevance)
    score = (d + lambda * |R_b|) * rho           (higher = more out-of-distribution)

lambda = mean(min_c ||R_full - m_c||_1) / mean(|R_b|) over the training set, with m_c the class means of the
full relevance vector (neurons and bias, no PCA).

Guard: the reference divides by f[j] without an epsilon, so a logit at exactly zero gives inf. Where
|f| < eps (1e-6) we divide by eps * sign(f) instead (sign(0) taken as +1): identical to the reference
everywhere else, and finite there instead of propagating inf/nan into the index and the alert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.ood.index import CentroidIndex

LOGIT_EPS = 1e-6
DEFAULT_K = 175

ArrayLike = np.ndarray | torch.Tensor


def as_tensor(x: ArrayLike, device: torch.device | str | None = None, dtype=torch.float32) -> torch.Tensor:
    tensor = torch.as_tensor(x) if isinstance(x, np.ndarray) else x
    return tensor.to(device=device, dtype=dtype)


def relevance(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """N x (D+1) relevance of each feature neuron and (last column) the bias, for each row of `features`.

    The logits and p/f are formed in float64: p/f amplifies any rounding in a small logit, and in float32 that
    alone costs ~1e-4 relative error on real heads. It is N x C work, negligible beside the forward pass.
    """
    logits = features.double() @ weight.double().T + bias.double()
    probs = torch.softmax(logits, dim=1)
    sign = torch.where(logits >= 0, 1.0, -1.0).to(logits.dtype)
    guarded = torch.where(logits.abs() < LOGIT_EPS, LOGIT_EPS * sign, logits)
    coef = probs / guarded                                      # N x C: p[j] / f[j]
    neurons = features * (coef @ weight.double()).to(features.dtype)   # N x D
    bias_relevance = (coef @ bias.double()).to(features.dtype)         # N
    return torch.cat([neurons, bias_relevance.unsqueeze(1)], dim=1)


@dataclass
class NeroTerms:
    """Everything one scoring pass computes: the score, its parts, and what the explanation needs."""

    score: torch.Tensor          # N
    distance: torch.Tensor       # N: L1 distance to the nearest PCA-space centroid
    bias_term: torch.Tensor      # N: lambda * |R_b|
    rho: torch.Tensor            # N: share of feature mass on the k least-relevant neurons
    nearest: torch.Tensor        # N: class index of the nearest centroid
    relevance: torch.Tensor      # N x (D+1)
    least_relevant: torch.Tensor  # N x k: indices of the k least-relevant neurons


class NeroScorer:
    """A fitted NERO model. Build with `NeroScorer.fit(...)`; the same object scores offline and in the stream."""

    def __init__(
        self,
        weight: ArrayLike,
        bias: ArrayLike,
        pca_mean: ArrayLike,
        pca_components: ArrayLike,
        centroids: ArrayLike,
        raw_means: ArrayLike,
        lam: float,
        k: int = DEFAULT_K,
        device: torch.device | str = "cpu",
        index_backend: str = "auto",
    ) -> None:
        self.device = torch.device(device)
        self.weight = as_tensor(weight, self.device)
        self.bias = as_tensor(bias, self.device)
        self.pca_mean = as_tensor(pca_mean, self.device)
        self.pca_components = as_tensor(pca_components, self.device)   # P x D, rows orthonormal
        self.centroids = as_tensor(centroids, self.device)             # C x P
        self.raw_means = as_tensor(raw_means, self.device)             # C x (D+1)
        self.lam = float(lam)
        self.k = int(k)
        self.index = CentroidIndex(self.centroids, backend=index_backend)
        if not 0 < self.k <= self.weight.shape[1]:
            raise ValueError(f"k={self.k} must lie in 1..D={self.weight.shape[1]}")

    @property
    def feature_dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_components(self) -> int:
        return int(self.pca_components.shape[0])

    @classmethod
    def fit(
        cls,
        features: ArrayLike,
        labels: ArrayLike,
        weight: ArrayLike,
        bias: ArrayLike,
        k: int = DEFAULT_K,
        n_components: int | None = None,
        device: torch.device | str = "cpu",
        index_backend: str = "auto",
    ) -> NeroScorer:
        """Fit on in-distribution training features with their ground-truth labels (all samples, as the reference).

        PCA, centroids and lambda are computed in float64 so that a fit is reproducible across devices.
        """
        a = as_tensor(features, "cpu", torch.float64)
        w = as_tensor(weight, "cpu", torch.float64)
        b = as_tensor(bias, "cpu", torch.float64)
        y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).long().cpu()
        num_classes, dim = w.shape
        present = torch.unique(y)
        if len(present) != num_classes or present.min() < 0 or present.max() >= num_classes:
            raise ValueError(f"labels must cover every class 0..{num_classes - 1}; found {present.tolist()}")
        n_components = int(2 * dim / 3) if n_components is None else int(n_components)
        if not 0 < n_components <= min(a.shape[0], dim):
            raise ValueError(f"PCA size {n_components} must lie in 1..min(N={a.shape[0]}, D={dim})")

        full = relevance(a, w, b)
        neurons = full[:, :dim]
        pca_mean = neurons.mean(dim=0)
        _, _, vh = torch.linalg.svd(neurons - pca_mean, full_matrices=False)
        components = vh[:n_components]
        projected = (neurons - pca_mean) @ components.T
        centroids = torch.stack([projected[y == c].mean(dim=0) for c in range(num_classes)])
        raw_means = torch.stack([full[y == c].mean(dim=0) for c in range(num_classes)])
        raw_distance = torch.cdist(full, raw_means, p=1).min(dim=1).values
        bias_mass = float(full[:, dim].abs().mean())
        # A head without bias (or with b = 0) has R_b = 0 everywhere: its term is zero whatever lambda is.
        lam = float(raw_distance.mean()) / bias_mass if bias_mass > 0 else 0.0
        return cls(w, b, pca_mean, components, centroids, raw_means, lam, k, device, index_backend)

    @torch.no_grad()
    def terms(self, features: ArrayLike) -> NeroTerms:
        """Score a batch and keep every intermediate (the explanation and the audit use them)."""
        a = as_tensor(features, self.device)
        full = relevance(a, self.weight, self.bias)
        neurons = full[:, : self.feature_dim]
        projected = (neurons - self.pca_mean) @ self.pca_components.T
        distance, nearest = self.index.search(projected)
        least = torch.topk(neurons, self.k, dim=1, largest=False).indices
        magnitude = a.abs()
        rho = magnitude.gather(1, least).sum(dim=1) / magnitude.sum(dim=1).clamp_min(torch.finfo(a.dtype).tiny)
        bias_term = self.lam * full[:, self.feature_dim].abs()
        score = (distance + bias_term) * rho
        return NeroTerms(score, distance, bias_term, rho, nearest, full, least)

    def score(self, features: ArrayLike) -> np.ndarray:
        """One float per row, higher = more out-of-distribution."""
        return self.terms(features).score.cpu().numpy()

    def arrays(self) -> dict[str, torch.Tensor]:
        """The fitted state as named CPU tensors (saved in the artifact)."""
        names = ("weight", "bias", "pca_mean", "pca_components", "centroids", "raw_means")
        return {name: getattr(self, name).detach().cpu().contiguous() for name in names}
