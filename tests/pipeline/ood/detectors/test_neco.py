import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from pipeline.ood.detectors.neco import NECO


def _reference(real, dim):
    scaler = StandardScaler().fit(real.train.features.double().numpy())
    pca = PCA().fit(scaler.transform(real.train.features.double().numpy()))
    features, logits = real.ood
    z = scaler.transform(features.double().numpy())
    ratio = np.linalg.norm(pca.transform(z)[:, :dim], axis=1) / np.linalg.norm(z, axis=1)
    return ratio, logits.numpy().max(axis=1)


def test_neco_matches_sklearn_scaler_and_pca(real):
    ratio, maxlogit = _reference(real, 10)
    features, logits = real.ood
    np.testing.assert_allclose(NECO(dim=10, maxlogit=False).fit(real.train).score(features, logits).numpy(),
                               -ratio, rtol=1e-4)
    np.testing.assert_allclose(NECO(dim=10).fit(real.train).score(features, logits).numpy(),
                               -ratio * maxlogit, rtol=1e-4)


def test_all_components_keep_the_whole_norm(real):
    features, logits = real.ood
    score = NECO(dim=real.train.feature_dim, maxlogit=False).fit(real.train).score(features, logits)
    np.testing.assert_allclose(score.numpy(), -1.0, rtol=1e-4)
