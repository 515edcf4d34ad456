import dataclasses

import pytest
import torch
from sklearn.metrics import roc_auc_score

from pipeline.errors import UserError
from pipeline.ood.detectors.patch_knn import PatchKNN
from pipeline.ood.detectors.relevance_knn import RelevanceKNN
from pipeline.ood.detectors.relevance_patch import RelevancePatch
from pipeline.ood.nero import relevance


def _score(detector, real, which: str):
    features, _ = getattr(real, which)
    patches = getattr(real, f"{which}_patches")
    return detector.score_relevance(relevance(features, real.train.weight, real.train.bias), features, patches)


def test_score_is_the_larger_part_over_its_held_out_scale(real):
    detector = RelevancePatch(k=2, feature_weight=0.5, bank_size=500).fit(real.train)
    knn = RelevanceKNN(2, 0.5).fit(real.train).score(*real.ood)
    patch = PatchKNN(500).fit(real.train.patches).score(real.ood_patches)
    scales = detector.scales
    expected = torch.maximum(knn / scales["relevance-knn"], patch / scales["patch-knn"])
    torch.testing.assert_close(_score(detector, real, "ood").score, expected)
    # a held-out scale is a typical in-distribution score: about 1 on the in-distribution test images
    assert 0.3 < float(_score(detector, real, "test").score.median()) < 1.5


def test_neuron_and_patch_shares_add_up_to_their_parts(real):
    found = _score(RelevancePatch(k=2, feature_weight=0.5).fit(real.train), real, "ood")
    torch.testing.assert_close(torch.maximum(*found.parts.values()), found.score)
    torch.testing.assert_close(found.neurons.sum(dim=1), found.parts["relevance-knn"], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(found.patches.sum(dim=1), found.parts["patch-knn"])
    assert found.patches.shape == (len(found.score), 49) and found.nearest is not None


def test_it_separates_real_outliers_at_least_as_well_as_relevance_knn(real):
    detector = RelevancePatch(k=2, feature_weight=0.5).fit(real.train)
    inliers, outliers = _score(detector, real, "test").score, _score(detector, real, "ood").score
    truth = [0] * len(inliers) + [1] * len(outliers)
    ours = 100 * roc_auc_score(truth, torch.cat([inliers, outliers]).numpy())
    knn = RelevanceKNN(2, 0.5).fit(real.train)
    alone = 100 * roc_auc_score(truth, torch.cat([knn.score(*real.test), knn.score(*real.ood)]).numpy())
    assert ours > 95 and ours >= alone


def test_it_needs_patch_features(real):
    detector = RelevancePatch(k=2).fit(real.train)
    features, _ = real.ood
    with pytest.raises(ValueError, match="patch features"):
        detector.score_relevance(relevance(features, real.train.weight, real.train.bias), features)
    with pytest.raises(UserError, match="patch features"):
        RelevancePatch(k=2).fit(dataclasses.replace(real.train, patches=None))


def test_the_artifact_round_trip_keeps_scores(real, tmp_path):
    detector = RelevancePatch(k=2, feature_weight=0.5, bank_size=300).fit(real.train)
    loaded = RelevancePatch.load(tmp_path, detector.save(tmp_path), real.train.weight, real.train.bias)
    torch.testing.assert_close(_score(loaded, real, "ood").score, _score(detector, real, "ood").score)
