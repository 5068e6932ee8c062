"""Exempting the loaded objects from collection keeps later garbage collectable."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from icpkit.memory import exempt_loaded_objects, release_freed_memory


class _Node:
    def __init__(self, payload: np.ndarray) -> None:
        self.payload = payload
        self.other: _Node | None = None


def _cycle() -> weakref.ref:
    a, b = _Node(np.zeros(100_000)), _Node(np.zeros(10))
    a.other, b.other = b, a  # only the cycle collector can free these
    return weakref.ref(a)


@pytest.fixture
def unfreeze():
    yield
    gc.unfreeze()


def test_exempt_objects_are_out_of_collection_and_later_cycles_are_still_freed(unfreeze):
    alive_before = _Node(np.zeros(3))
    exempt_loaded_objects()
    assert gc.get_freeze_count() > 0
    assert not any(o is alive_before for o in gc.get_objects())  # frozen: no collection walks it
    gone = _cycle()
    assert gone() is not None
    release_freed_memory()
    assert gone() is None


def test_garbage_in_cycles_before_the_exemption_is_freed_not_frozen(unfreeze):
    gone = _cycle()
    exempt_loaded_objects()
    assert gone() is None
