import torch
from sklearn.metrics import roc_auc_score

from pipeline.ood.detectors.relevance_ensemble import RelevanceEnsemble
from pipeline.ood.detectors.relevance_knn import RelevanceKNN
from pipeline.ood.detectors.relevance_mahalanobis import RelevanceMahalanobis
from pipeline.ood.nero import relevance


def test_score_is_the_mean_of_the_parts_over_their_held_out_scales(real):
    ensemble = RelevanceEnsemble(k=2, feature_weight=0.5).fit(real.train)
    features, logits = real.ood
    knn = RelevanceKNN(k=2, feature_weight=0.5).fit(real.train).score(features, logits)
    mahalanobis = RelevanceMahalanobis().fit(real.train).score(features, logits)
    scales = ensemble.scales
    expected = (knn / scales["relevance-knn"] + mahalanobis / scales["relevance-mahalanobis"]) / 2
    torch.testing.assert_close(ensemble.score(features, logits), expected)
    # a held-out scale is a typical in-distribution score: about 1 on the in-distribution test images
    test_scores = ensemble.score(*real.test)
    assert 0.3 < float(test_scores.median()) < 1.5


def test_parts_and_neuron_shares_add_up_to_the_score(real):
    ensemble = RelevanceEnsemble(k=2, feature_weight=0.5).fit(real.train)
    features, _ = real.ood
    found = ensemble.score_relevance(relevance(features, real.train.weight, real.train.bias), features)
    torch.testing.assert_close(sum(found.parts.values()) / 2, found.score)
    torch.testing.assert_close(found.neurons.sum(dim=1), found.score, rtol=1e-3, atol=1e-3)


def _auroc(detector, real) -> float:
    inliers, outliers = detector.score(*real.test), detector.score(*real.ood)
    truth = [0] * len(inliers) + [1] * len(outliers)
    return 100 * roc_auc_score(truth, torch.cat([inliers, outliers]).numpy())


def test_it_separates_real_outliers_at_least_as_well_as_its_weaker_part(real):
    ensemble = _auroc(RelevanceEnsemble(k=2, feature_weight=0.5).fit(real.train), real)
    parts = [_auroc(part.fit(real.train), real) for part in (RelevanceKNN(2, 0.5), RelevanceMahalanobis())]
    assert ensemble > 90 and ensemble >= min(parts)


def test_the_artifact_round_trip_keeps_scores(real, tmp_path):
    ensemble = RelevanceEnsemble(k=2, feature_weight=0.5).fit(real.train)
    loaded = RelevanceEnsemble.load(tmp_path, ensemble.save(tmp_path), real.train.weight, real.train.bias)
    features, logits = real.ood
    torch.testing.assert_close(loaded.score(features, logits), ensemble.score(features, logits))
