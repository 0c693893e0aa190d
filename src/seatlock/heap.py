"""The worker's heap and Python's cyclic garbage collector.

A full collection walks every object the collector tracks, and the event loop stands still
while it does: about 110 ms on the benchmark machine for what a worker holds once it has
started (the imported modules, the app, its routes and OpenAPI schema), none of which ever
becomes garbage. In a flash sale's first seconds the requests' allocations set off full
collections one after another, and every request in hand waited 135-230 ms for each. Frozen
once start-up is done, those objects are out of the collector's reach for good; it still
collects everything made afterwards. (A frozen object that later becomes garbage inside a
reference cycle is never freed: what start-up makes lives as long as the worker anyway.)

With the default threshold a young collection runs every 700 allocations, so the objects
of the requests in hand, alive at that moment, are promoted and left for the older
generations, and their full collections, to free. Every `YOUNG_ALLOCATIONS` instead, most
of them have been freed by their reference counts before the next collection looks.
"""

from __future__ import annotations

import gc
from typing import Final

# Allocations (less deallocations) of tracked objects between young collections; Python's
# default is 700. One costs about 10-25 ms of a busy worker's time at this size.
YOUNG_ALLOCATIONS: Final = 10_000


def freeze_startup_objects() -> None:
    """Collects what start-up left behind, moves every surviving object to the permanent
    generation, which no collection walks, and spaces the young collections out."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_ALLOCATIONS, older, oldest)
