"""scripts/representation_check.py: its mid-level statistics leave the classifier's own features untouched, and
its embeddings are relevance-kNN's, with the extra block weighted as stated."""

import importlib.util
from pathlib import Path

import numpy as np
import torch

from pipeline.model.classifier import FeatureClassifier, build_model
from pipeline.ood.detectors.relevance_knn import relevance_embedding
from pipeline.ood.nero import relevance

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("representation_check", REPO / "scripts" / "representation_check.py")
representation_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(representation_check)


@torch.no_grad()
def test_mid_level_statistics_follow_the_unchanged_features_and_weigh_as_stated():
    torch.manual_seed(0)
    classifier = FeatureClassifier(build_model("efficientnet_lite0", num_classes=2)).eval()
    images = torch.rand(3, 3, 96, 96)
    features, logits, _ = classifier(images)
    rows, same_logits, _ = representation_check.MidLevel(classifier)(images)
    assert rows.shape == (3, 1280 + 2 * (24 + 40 + 80 + 112 + 192 + 320))
    assert torch.equal(rows[:, :1280], features) and torch.equal(same_logits, logits)
    weight, bias = classifier.head.weight, classifier.head.bias
    plain = representation_check.embedder(weight, bias, rows, 0.0)(rows)
    assert torch.allclose(plain, relevance_embedding(relevance(features, weight, bias), features, 0.75))
    mixed = representation_check.embedder(weight, bias, rows, 0.25)(rows)
    assert torch.allclose(mixed.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(mixed[:, plain.shape[1]:].norm(dim=1) ** 2, torch.full((3,), 0.25), atol=1e-5)


def test_colour_statistics_tell_a_red_frame_from_a_blue_one():
    red, blue = np.zeros((120, 160, 3), np.uint8), np.zeros((120, 160, 3), np.uint8)
    red[..., 0], blue[..., 2] = 200, 200
    a, b = representation_check.colour_statistics(red), representation_check.colour_statistics(blue)
    assert a.shape == b.shape == (3 + 3 + 64 + 8,) and np.linalg.norm(a - b) > 1
