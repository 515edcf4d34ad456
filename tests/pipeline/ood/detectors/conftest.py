"""Real data for the detector tests: features of real images (tests/data) from a real classifier.

The classifier is EfficientNet-Lite0 with its ImageNet weights (the backbone every bundled model starts from)
and a 2-class linear head fitted on Kvasir-SEG frames, labelled by whether the polyp covers more than the
median share of the frame. To keep the covariance-based detectors well posed on a few dozen training images,
the tests use the first DIM feature channels and a head fitted on exactly those (logits = a W^T + b, as the
detectors assume). OOD = capsule frames, chest X-rays and natural photographs; the validation data of the
tuned detectors is the last 16 training rows against every other OOD image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from pipeline.media.images import list_images, read_rgb
from pipeline.model.classifier import FeatureClassifier
from pipeline.model.features import extract_features
from pipeline.model.preprocess import Preprocess
from pipeline.ood.detectors import FitData, Validation

FIXTURES = Path(__file__).resolve().parents[3] / "data"
DIM = 48
N_TRAIN, N_TEST, N_OOD = 64, 24, 10
ODIN_SIZE = 128


@dataclass
class RealSet:
    """Everything a detector test needs, as float32 CPU tensors."""

    train: FitData
    test: tuple[torch.Tensor, torch.Tensor]     # in-distribution (features, logits)
    ood: tuple[torch.Tensor, torch.Tensor]      # capsule + chest X-ray + natural
    test_patches: torch.Tensor                  # their patch features (N x 49 x 192)
    ood_patches: torch.Tensor
    classifier: FeatureClassifier
    test_inputs: torch.Tensor                    # a few preprocessed ID images (for ODIN)
    ood_inputs: torch.Tensor                     # a few preprocessed OOD images


def polyp_share(image: Path) -> float:
    mask = cv2.imread(str(image.parent.parent / "masks" / f"{image.stem}.png"), cv2.IMREAD_GRAYSCALE)
    return float((mask > 127).mean())


@pytest.fixture(scope="session")
def real() -> RealSet:
    from pipeline.model.pretrained import imagenet_efficientnet_lite0

    torch.manual_seed(0)
    model = imagenet_efficientnet_lite0()
    model.reset_classifier(2)
    classifier = FeatureClassifier(model).eval()
    preprocess = Preprocess(224)
    kvasir = list_images(FIXTURES / "kvasir-seg" / "train" / "images")[: N_TRAIN + N_TEST]
    ood = [p for name in ("capsule", "chest-xray", "natural")
           for p in list_images(FIXTURES / "OOD" / name)[:N_OOD]]
    features, _, patches = extract_features(classifier, preprocess, kvasir + ood, batch_size=32)
    features = features[:, :DIM].double()

    shares = np.array([polyp_share(p) for p in kvasir])
    labels = torch.from_numpy((shares > np.median(shares[:N_TRAIN])).astype(np.int64))
    head = LogisticRegression(C=1.0, max_iter=2000).fit(features[:N_TRAIN].numpy(), labels[:N_TRAIN].numpy())
    # One row per class (sklearn keeps one row for two classes): logits (-z/2, z/2) give the same softmax.
    weight = torch.from_numpy(np.vstack([-head.coef_, head.coef_]) / 2)
    bias = torch.from_numpy(np.array([-head.intercept_[0], head.intercept_[0]]) / 2)
    logits = features @ weight.T + bias

    f, lg = features.float(), logits.float()
    train = FitData(f[:N_TRAIN], lg[:N_TRAIN], labels[:N_TRAIN], weight.float(), bias.float(),
                    patches=patches[:N_TRAIN])
    test_slice, ood_slice = slice(N_TRAIN, N_TRAIN + N_TEST), slice(N_TRAIN + N_TEST, None)
    held = torch.arange(N_TRAIN - 16, N_TRAIN)
    train.validation = Validation(train.subset(torch.arange(N_TRAIN - 16)), (f[held], lg[held]),
                                  (f[ood_slice][::2], lg[ood_slice][::2]))
    def inputs(paths: list[Path]) -> torch.Tensor:
        """Smaller than the model's 224 px (it takes any size): input gradients are the slow part on a CPU."""
        return Preprocess(ODIN_SIZE)([torch.from_numpy(read_rgb(p)) for p in paths])

    return RealSet(train, (f[test_slice], lg[test_slice]), (f[ood_slice], lg[ood_slice]), patches[test_slice],
                   patches[ood_slice], classifier, inputs(kvasir[N_TRAIN:N_TRAIN + 2]), inputs(ood[-2:]))
