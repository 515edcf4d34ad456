"""NeroScorer against NERO.md: conservation, a hand-computed case, and an independent float64 reference."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from pipeline import NeroScorer, relevance


def reference_nero(train_a, train_y, W, b, test_a, k=175):
    """NERO.md written out in float64 numpy, loop by loop, sharing no code with pipeline.ood.nero."""
    train_a, W, b, test_a = (np.asarray(x, dtype=np.float64) for x in (train_a, W, b, test_a))

    def full_relevance(a):
        out = np.zeros((len(a), a.shape[1] + 1))
        for i, x in enumerate(a):
            f = W @ x + b
            p = np.exp(f - f.max())
            p /= p.sum()
            z = np.concatenate([x[None, :] * W, b[:, None]], axis=1)   # C x (D+1)
            out[i] = (p[:, None] * z / f[:, None]).sum(axis=0)
        return out

    dim = train_a.shape[1]
    r_train = full_relevance(train_a)
    pca = PCA(n_components=int(2 * dim / 3), svd_solver="full").fit(r_train[:, :dim])
    proj = pca.transform(r_train[:, :dim])
    classes = np.unique(train_y)
    centroids = np.stack([proj[train_y == c].mean(0) for c in classes])
    means = np.stack([r_train[train_y == c].mean(0) for c in classes])
    d_raw = np.abs(r_train[:, None, :] - means[None]).sum(-1).min(1)
    lam = d_raw.mean() / np.abs(r_train[:, dim]).mean()

    r_test = full_relevance(test_a)
    d = np.abs(pca.transform(r_test[:, :dim])[:, None, :] - centroids[None]).sum(-1).min(1)
    scores = []
    for x, r, dist in zip(test_a, r_test, d, strict=True):
        least = np.argsort(r[:dim])[:k]
        rho = np.abs(x[least]).sum() / np.abs(x).sum()
        scores.append((dist + lam * abs(r[dim])) * rho)
    return np.array(scores), lam


def synthetic(signed: bool, n=900, dim=96, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    means = rng.normal(0, 1, (classes, dim))
    a = means[labels] + rng.normal(0, 0.7, (n, dim))
    if not signed:
        a = np.maximum(a, 0)      # post-ReLU features, as a ResNet's pooled output
    W = rng.normal(0, 0.3, (classes, dim))
    b = rng.normal(0, 0.5, classes)
    return a.astype(np.float32), labels, W.astype(np.float32), b.astype(np.float32)


def test_relevance_is_conserved():
    a, _, W, b = synthetic(signed=True)
    r = relevance(torch.tensor(a), torch.tensor(W), torch.tensor(b))
    assert r.shape == (len(a), a.shape[1] + 1)
    torch.testing.assert_close(r.double().sum(dim=1), torch.ones(len(a), dtype=torch.float64), atol=1e-4,
                               rtol=0)


def test_hand_computed_case():
    # f = W a + b = [2, 1], p = softmax(f); R[0] = p0*1/2, R[1] = p1*2/1, R_b = p0*1/2 + p1*(-1)/1
    a = torch.tensor([[1.0, 2.0]])
    W = torch.eye(2)
    b = torch.tensor([1.0, -1.0])
    p0, p1 = torch.softmax(torch.tensor([2.0, 1.0]), 0).tolist()
    r = relevance(a, W, b)[0].tolist()
    assert r == pytest.approx([p0 / 2, p1 * 2, p0 / 2 - p1], rel=1e-6)
    assert sum(r) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("signed", [False, True], ids=["resnet-like", "deit-like"])
def test_matches_float64_reference(signed):
    a, y, W, b = synthetic(signed)
    train, test = slice(0, 600), slice(600, None)
    ood = np.abs(np.random.default_rng(1).normal(0, 2, (50, a.shape[1]))).astype(np.float32)
    queries = np.concatenate([a[test], ood])
    k = 30
    expected, expected_lam = reference_nero(a[train], y[train], W, b, queries, k=k)
    scorer = NeroScorer.fit(a[train], y[train], W, b, k=k)
    assert scorer.lam == pytest.approx(expected_lam, rel=1e-9)
    assert scorer.n_components == int(2 * a.shape[1] / 3)
    got = scorer.score(queries)
    assert isinstance(got, np.ndarray) and got.shape == (len(queries),)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # the far-away inputs must score higher than the in-distribution test rows, on average
    assert got[-50:].mean() > got[: len(a[test])].mean()


def test_torch_in_numpy_out_and_backends_agree():
    a, y, W, b = synthetic(signed=False, n=300, dim=48)
    faiss_scorer = NeroScorer.fit(torch.tensor(a), torch.tensor(y), torch.tensor(W), torch.tensor(b), k=10)
    torch_scorer = NeroScorer.fit(a, y, W, b, k=10, index_backend="torch")
    np.testing.assert_allclose(faiss_scorer.score(torch.tensor(a)), torch_scorer.score(a), rtol=1e-6)


def test_zero_logit_stays_finite():
    # a = 0 and b = 0 give f = 0 for every class: the reference divides by zero here
    W = torch.ones(2, 4)
    b = torch.zeros(2)
    r = relevance(torch.zeros(1, 4), W, b)
    assert torch.isfinite(r).all()


def test_fit_rejects_bad_inputs():
    a, y, W, b = synthetic(signed=False, n=90, dim=48)
    with pytest.raises(ValueError, match="cover every class"):
        NeroScorer.fit(a, np.zeros_like(y), W, b, k=10)
    with pytest.raises(ValueError, match="PCA size"):
        NeroScorer.fit(a[:20], y[:20], W, b, k=10)
    with pytest.raises(ValueError, match="k=500"):
        NeroScorer.fit(a, y, W, b, k=500)


def test_head_without_bias_gives_finite_scores():
    a, y, W, _ = synthetic(signed=False, n=300, dim=48)
    scorer = NeroScorer.fit(a, y, W, np.zeros(3, dtype=np.float32), k=10)
    assert scorer.lam == 0.0
    assert np.isfinite(scorer.score(a)).all()
