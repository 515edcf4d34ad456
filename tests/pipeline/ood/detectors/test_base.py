import torch

from pipeline.ood.detectors.base import class_means


def test_subset_keeps_the_head_and_drops_validation(real):
    rows = torch.tensor([3, 1, 4])
    part = real.train.subset(rows)
    torch.testing.assert_close(part.features, real.train.features[rows])
    torch.testing.assert_close(part.labels, real.train.labels[rows])
    assert part.weight is real.train.weight and part.validation is None
    assert (part.num_classes, part.feature_dim) == (2, real.train.features.shape[1])


def test_class_means(real):
    means = class_means(real.train.features, real.train.labels, 2)
    torch.testing.assert_close(means[1], real.train.features[real.train.labels == 1].mean(dim=0))
