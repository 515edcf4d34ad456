"""The feature cache: computed once, served again, missed when the model or an image changes."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pipeline.evaluation.cache import FeatureCache
from pipeline.evaluation.datasets import ImageSet
from pipeline.media.images import list_images
from pipeline.model.preprocess import Preprocess

FIXTURES = Path(__file__).resolve().parents[2] / "data"


def test_cache_serves_a_second_request_without_the_model_and_notices_a_changed_file(tmp_path):
    from pipeline.model.classifier import FeatureClassifier
    from pipeline.model.pretrained import imagenet_efficientnet_lite0

    images = tmp_path / "images"
    images.mkdir()
    for path in list_images(FIXTURES / "OOD" / "natural")[:3]:
        (images / path.name).write_bytes(path.read_bytes())
    image_set = ImageSet("natural", list_images(images))
    classifier = FeatureClassifier(imagenet_efficientnet_lite0()).eval()
    forwards = []
    classifier.register_forward_hook(lambda module, args, output: forwards.append(len(args[0])))
    cache = FeatureCache(tmp_path / "cache", classifier, Preprocess(224), "model-key", "cpu")
    features, logits, patches = cache.features(image_set)
    assert features.shape == (3, 1280) and logits.shape == (3, 1000) and sum(forwards) == 3

    torch.testing.assert_close(cache.features(image_set)[0], features)
    assert sum(forwards) == 3                                  # served from the cache
    FeatureCache(tmp_path / "cache", classifier, Preprocess(224), "other-model", "cpu").features(image_set)
    assert sum(forwards) == 6                                  # another model misses it
    os.utime(image_set.paths[0], ns=(0, 0))
    cache.features(image_set)
    assert sum(forwards) == 9                                  # so does a changed image file
