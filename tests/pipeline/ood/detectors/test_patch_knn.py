import torch
from sklearn.metrics import roc_auc_score

from pipeline.ood.detectors.patch_knn import PatchKNN


def test_distances_are_each_patchs_distance_to_its_nearest_bank_patch(real):
    detector = PatchKNN(bank_size=500).fit(real.train.patches)
    assert detector.bank.shape == (500, real.train.patches.shape[-1])
    queries = real.ood_patches[:3].float()
    brute = torch.cdist(queries.reshape(-1, queries.shape[-1]).double(), detector.bank.double(),
                        compute_mode="donot_use_mm_for_euclid_dist").amin(dim=1)
    torch.testing.assert_close(detector.distances(queries).double(), brute.reshape(3, -1), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(detector.score(queries), detector.distances(queries).mean(dim=1))


def test_the_bank_is_a_seeded_sample_of_the_training_patches(real):
    first, second = PatchKNN(200).fit(real.train.patches), PatchKNN(200).fit(real.train.patches)
    assert torch.equal(first.bank, second.bank)
    rows = real.train.patches.reshape(-1, real.train.patches.shape[-1]).half().float()
    exact = torch.cdist(first.bank, rows, compute_mode="donot_use_mm_for_euclid_dist")
    assert bool((exact.amin(dim=1) == 0).all())                  # every bank row is one of the training patches
    # with every patch in the bank, a training image's own patches lie at distance 0 (up to the rounding of
    # |q|^2 + |b|^2 - 2 q.b), far below another image's
    every = PatchKNN(len(rows)).fit(real.train.patches)
    assert float(every.score(real.train.patches[:2]).max()) < 0.1 < float(every.score(real.ood_patches).min())


def test_it_separates_real_outliers_from_in_distribution_frames(real):
    detector = PatchKNN().fit(real.train.patches)
    inliers, outliers = detector.score(real.test_patches), detector.score(real.ood_patches)
    truth = [0] * len(inliers) + [1] * len(outliers)
    assert 100 * roc_auc_score(truth, torch.cat([inliers, outliers]).numpy()) > 95


def test_the_artifact_round_trip_keeps_scores(real, tmp_path):
    detector = PatchKNN(300).fit(real.train.patches)
    loaded = PatchKNN.load(tmp_path, detector.save(tmp_path), "cpu")
    torch.testing.assert_close(loaded.score(real.ood_patches), detector.score(real.ood_patches))
