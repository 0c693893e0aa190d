"""One read at a time per key: the requests of a burst that need the same missing thing
wait for one task to read it, and all go on in the same turn of the loop once it is done.
(Waiting on a lock instead, each would take it in turn, a turn of a busy loop apiece.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from functools import partial
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """The task under way for each key, if any."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[T]] = {}

    def start(self, key: K, work: Callable[[], Coroutine[Any, Any, T]]) -> asyncio.Task[T]:
        """The key's task under way, or a new one running `work`."""
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.create_task(work())
            task.add_done_callback(partial(self._done, key))
        return task

    async def join(self, key: K, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """The key's task's result. Shielded: a caller that gives up does not cancel the
        task the others wait for."""
        return await asyncio.shield(self.start(key, work))

    def under_way(self, key: K) -> bool:
        return key in self._tasks

    def running(self) -> list[asyncio.Task[T]]:
        return list(self._tasks.values())

    async def wait(self) -> None:
        """Waits for the tasks under way, those no caller waits for included (so that none
        holds a connection of an engine about to be disposed)."""
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _done(self, key: K, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        # Every waiter sees a failure; taking it here keeps one that only waiters who gave
        # up saw from being reported as never retrieved. The next caller starts again.
        if not task.cancelled():
            task.exception()
