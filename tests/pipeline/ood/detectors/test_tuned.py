import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pipeline.ood.detectors.knn import KNN
from pipeline.ood.detectors.tuned import Tuned


def _auroc(detector, validation) -> float:
    inliers = detector.score(*validation.inliers).numpy()
    outliers = detector.score(*validation.outliers).numpy()
    truth = np.r_[np.zeros(len(inliers)), np.ones(len(outliers))]
    return 100 * roc_auc_score(truth, np.r_[inliers, outliers])


def test_picks_the_setting_with_the_best_validation_auroc_then_refits_on_all_rows(real):
    grid = [{"k": k} for k in (1, 3, 10, 30)]
    validation = real.train.validation
    aurocs = [_auroc(KNN(**s).fit(validation.train), validation) for s in grid]
    tuned = Tuned("knn-tuned", KNN, lambda data: grid).fit(real.train)
    best = grid[int(np.argmax(aurocs))]
    assert tuned.setting == best and tuned.validation_auroc == pytest.approx(max(aurocs))
    features, logits = real.ood
    refit = KNN(**best).fit(real.train)
    torch.testing.assert_close(tuned.score(features, logits), refit.score(features, logits))


def test_refuses_to_tune_without_validation_data(real):
    with pytest.raises(ValueError, match="validation"):
        Tuned("knn-tuned", KNN, lambda data: [{"k": 1}]).fit(real.train.subset(torch.arange(10)))
