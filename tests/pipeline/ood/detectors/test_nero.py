import numpy as np
import pytest

from pipeline.ood.detectors.nero import Nero
from pipeline.ood.nero import NeroScorer


def test_the_adapter_scores_exactly_as_the_project_scorer(real):
    t = real.train
    scorer = NeroScorer.fit(t.features, t.labels, t.weight, t.bias, k=16)       # PCA int(2*48/3) = 32
    features, logits = real.ood
    detector = Nero(k=16).fit(t)
    np.testing.assert_array_equal(detector.score(features, logits).numpy(), scorer.score(features))
    assert detector.params() == {"k": 16, "n_components": 32}


def test_pca_size_is_capped_by_the_training_rows(real):
    few = real.train.subset(np.arange(20))
    assert Nero(k=16).fit(few).params()["n_components"] == 20


def test_reference_k_larger_than_the_features_is_refused(real):
    with pytest.raises(ValueError, match="k=175"):
        Nero().fit(real.train)
