import numpy as np
import pytest
from scipy.special import logsumexp

from pipeline.ood.detectors.vim import ViM, principal_size


def test_vim_matches_a_numpy_computation_of_the_paper(real):
    a = real.train.features.double().numpy()
    w, b = real.train.weight.double().numpy(), real.train.bias.double().numpy()
    origin = -np.linalg.pinv(w) @ b
    centred = a - origin
    values, vectors = np.linalg.eig(centred.T @ centred / len(a))            # uncentred around the origin
    residual_space = vectors[:, np.argsort(-values.real)[24:]].real            # D = 48 -> 24 principal dims
    residual = np.linalg.norm(centred @ residual_space, axis=1)
    alpha = real.train.logits.double().numpy().max(axis=1).mean() / residual.mean()
    features, logits = real.ood
    x = features.double().numpy()
    virtual = alpha * np.linalg.norm((x - origin) @ residual_space, axis=1)
    expected = virtual - logsumexp(logits.numpy(), axis=1)
    np.testing.assert_allclose(ViM().fit(real.train).score(features, logits).numpy(), expected, rtol=1e-3)


@pytest.mark.parametrize(("dim", "principal"),
                         [(2048, 1000), (1280, 512), (768, 512), (512, 256), (384, 192)])
def test_principal_size_follows_the_paper(dim, principal):
    assert principal_size(dim) == principal
