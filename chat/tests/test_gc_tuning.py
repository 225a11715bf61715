"""The collector settings `python -m chat` applies before serving."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from chat import gc_tuning


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restore_gc")
def test_tune_freezes_startup_heap_and_keeps_full_collections() -> None:
    gc.unfreeze()
    gc_tuning.tune()
    assert gc.get_freeze_count() > 0  # startup's objects are out of every collection
    assert gc.get_threshold() == gc_tuning.THRESHOLDS
    assert gc.isenabled()
    # Cycles are still collected: the oldest generation keeps CPython's default.
    assert gc_tuning.THRESHOLDS[2] == 10
    assert gc.collect() >= 0
