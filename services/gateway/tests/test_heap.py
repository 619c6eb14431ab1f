"""The startup heap is frozen: later collections do not walk it."""

from __future__ import annotations

import gc

import pytest

from trunkline.gateway.heap import freeze_startup_heap

pytestmark = pytest.mark.unit


def test_what_lives_at_startup_is_frozen_and_later_garbage_still_collected() -> None:
    startup = [[i] for i in range(10_000)]  # long-lived objects made before the process is ready
    try:
        frozen = freeze_startup_heap()
        assert frozen >= len(startup)
        assert gc.get_freeze_count() == frozen
        tracked_before = sum(len(gc.get_objects(generation)) for generation in range(3))
        assert tracked_before < frozen  # a full collection no longer walks the startup heap

        class Cycle:
            def __init__(self) -> None:
                self.me = self

        gc.disable()  # no automatic collection meanwhile: the one below must find them
        for _ in range(1000):
            Cycle()
        assert gc.collect() >= 1000  # what calls leave behind is still collected
    finally:
        gc.enable()
        gc.unfreeze()
