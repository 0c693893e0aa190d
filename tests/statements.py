"""The SQL statements an engine sends, for tests that count what a request costs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.app import BACKGROUND


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements sent on `engine` while the block runs, but those of a worker's
    background loops (expiry sweeps, cache repair, queue admission), which run on clocks of
    their own whatever the requests do."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        task = asyncio.current_task()
        if task is None or not task.get_name().startswith(BACKGROUND):
            seen.append(args[2])

    sa_event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", record)
