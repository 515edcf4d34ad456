"""Batcher: full batches at once, partial batches after max_wait, nothing lost or reordered."""

import pytest

from stages.batcher import Batcher


def test_full_batch_is_returned_by_the_item_that_completes_it():
    batcher = Batcher(max_batch=3, max_wait_s=1.0)
    assert batcher.add("a", now=0.0) is None
    assert batcher.add("b", now=0.1) is None
    assert batcher.add("c", now=0.2) == ["a", "b", "c"]
    assert len(batcher) == 0 and batcher.time_left(0.3) is None


def test_partial_batch_waits_at_most_max_wait_from_its_first_item():
    batcher = Batcher(max_batch=8, max_wait_s=0.010)
    batcher.add("a", now=5.000)
    batcher.add("b", now=5.008)
    assert batcher.time_left(5.008) == pytest.approx(0.002)
    assert batcher.due(5.009) is None
    assert batcher.due(5.010) == ["a", "b"]
    assert batcher.due(5.020) is None
    batcher.add("c", now=6.0)            # the next batch has a fresh deadline
    assert batcher.time_left(6.0) == pytest.approx(0.010)
    assert batcher.time_left(7.0) == 0.0


def test_flush_returns_what_is_pending_in_order():
    batcher = Batcher(max_batch=4, max_wait_s=1.0)
    assert batcher.flush() is None
    for i in range(6):
        batcher.add(i, now=0.0)
    assert batcher.flush() == [4, 5]


def test_zero_wait_dispatches_every_item_at_once():
    batcher = Batcher(max_batch=4, max_wait_s=0.0)
    batcher.add("a", now=1.0)
    assert batcher.due(1.0) == ["a"]


@pytest.mark.parametrize("max_batch, max_wait_s", [(0, 0.01), (4, -1.0)])
def test_bad_settings_are_refused(max_batch, max_wait_s):
    with pytest.raises(ValueError):
        Batcher(max_batch, max_wait_s)
