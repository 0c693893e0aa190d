"""The worker's heap and Python's cyclic garbage collector.

A full collection walks every object the collector tracks, and the event loop stands still
while it does. A started worker holds about 186,000 such objects (the imported modules, the
app, its routes and OpenAPI schema), none of which ever becomes garbage: one collection of
them takes about 110 ms on the benchmark machine when idle, and took 155-232 ms in the
workers during a flash sale, every request in hand waiting for it. Frozen once start-up is
done, those objects are out of the collector's reach for good; it still collects everything
made afterwards. (A frozen object that later becomes garbage inside a reference cycle is
never freed: what start-up makes lives as long as the worker anyway.)

With the default threshold a young collection runs every 700 allocations, so the objects
of the requests in hand, alive at that moment, are promoted and left for the older
generations, and their full collections, to free. Every `YOUNG_ALLOCATIONS` instead, most
of them have been freed by their reference counts before the next collection looks.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from litestar import Litestar

from seatlock.settings import Settings

# Allocations (less deallocations) of tracked objects between young collections; Python's
# default is 700. One costs about 10-25 ms of a busy worker's time at this size.
YOUNG_ALLOCATIONS: Final = 10_000


def freeze_startup_objects() -> None:
    """Collects what start-up left behind, then moves every surviving object to the
    permanent generation, which no collection walks."""
    gc.collect()
    gc.freeze()


def space_young_collections() -> None:
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_ALLOCATIONS, older, oldest)


@asynccontextmanager
async def settled_heap(app: Litestar) -> AsyncIterator[None]:
    """The app's last lifespan: once every other one has started, unless `gc_freeze` is off."""
    settings: Settings = app.state.settings
    if settings.gc_freeze:
        freeze_startup_objects()
        space_young_collections()
    yield
