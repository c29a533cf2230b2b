"""Python's cyclic garbage collector, kept off the big structures a first copy builds.

A 100,000-client batch is read into some 400,000 objects (records, addresses, patients) that
hold no reference cycle and live as long as the run. Left to itself, the collector walks them
again and again while they are built and while the run writes them: two seconds of a first
copy, measured with ``gc.callbacks``. ``paused`` builds them without collections; ``spared``
leaves what exists out of the collections that run inside it (``gc.freeze``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside: for building many objects that hold no cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def spared() -> Iterator[None]:
    """Collections inside skip every object that exists as the block starts; afterwards all
    of them are collected as usual again (garbage among them included)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
