"""The registry (pipeline/ood/detectors/__init__.py) and the contract every detector shares."""

import pytest
import torch

from pipeline.ood.detectors import DETECTORS, EXTENSIONS, EXTRA, PUBLISHED, Detector, build_detector
from pipeline.ood.detectors.neco import NECO
from pipeline.ood.detectors.nero import Nero
from pipeline.ood.detectors.nero_kmeans import NeroKMeans

FEATURE_SPACE = [name for name in DETECTORS if name != "odin"]
# The reference k = 175 needs D >= 175; the test features have 48 channels.
SMALL_D = {"nero": lambda: Nero(k=16), "nero-kmeans": lambda: NeroKMeans(clusters=2, k=16)}


def test_the_published_comparison_and_more_are_registered():
    assert set(PUBLISHED) | set(EXTRA) | set(EXTENSIONS) == set(DETECTORS)
    assert len(PUBLISHED) + len(EXTRA) >= 13
    assert {build_detector(name).name for name in DETECTORS} == set(DETECTORS)


def test_unknown_names_are_refused():
    with pytest.raises(KeyError, match="unknown detector"):
        build_detector("nope")


def test_reference_runs_neco_without_max_logit_on_resnet18_only():
    assert build_detector("neco", "resnet18").maxlogit is False
    assert build_detector("neco", "deit_small").maxlogit is True
    assert isinstance(build_detector("neco"), NECO)


@pytest.mark.parametrize("name", FEATURE_SPACE)
def test_every_feature_detector_scores_each_row_finitely_and_alone(real, name):
    detector = SMALL_D[name]() if name in SMALL_D else build_detector(name)
    assert isinstance(detector, Detector)
    detector.fit(real.train)
    features, logits = real.ood
    scores = detector.score(features, logits)
    assert scores.shape == (len(features),) and torch.isfinite(scores).all()
    alone = torch.cat([detector.score(features[i:i + 1], logits[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(alone, scores[:3], rtol=1e-4, atol=1e-5)
