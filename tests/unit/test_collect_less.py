"""The worker's garbage collector setting (:func:`yadtq_app.faust_worker.collect_less`)."""

from __future__ import annotations

import gc
from typing import Iterator

import pytest

from yadtq_app.faust_worker import collect_less


@pytest.fixture
def thresholds() -> Iterator[tuple[int, ...]]:
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.set_threshold(*before)


def test_only_the_youngest_generation_changes(thresholds: tuple[int, ...]) -> None:
    collect_less(12_345)
    assert gc.get_threshold() == (12_345, *thresholds[1:])


def test_young_collections_come_that_much_less_often(thresholds: tuple[int, ...]) -> None:
    def young_collections(n: int) -> int:
        gc.collect()
        before = gc.get_stats()[0]["collections"]
        keep = [[] for _ in range(n)]  # containers that stay alive: each counts as an allocation
        del keep
        return gc.get_stats()[0]["collections"] - before

    gc.set_threshold(700, *thresholds[1:])
    at_default = young_collections(70_000)
    collect_less(7_000)
    assert young_collections(70_000) <= at_default // 5
