"""The held-out split that validation data is made of."""

from __future__ import annotations

import torch

from pipeline.evaluation.validation import held_out_rows


def test_held_out_rows_are_stratified_seeded_and_leave_every_class_a_row():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    rows = held_out_rows(labels, 0.2, seed=3)
    assert torch.bincount(labels[rows], minlength=3).tolist() == [2, 1, 0]
    assert torch.equal(rows, held_out_rows(labels, 0.2, seed=3))
    assert not torch.equal(rows, held_out_rows(labels, 0.2, seed=4))
