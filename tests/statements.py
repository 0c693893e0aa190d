"""The SQL statements an engine sends, for tests that count what a request costs; and
what PostgreSQL's backends wait on, for tests that interleave transactions."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.app import BACKGROUND


def _from_a_request() -> bool:
    task = asyncio.current_task()
    return task is None or not task.get_name().startswith(BACKGROUND)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements sent on `engine` while the block runs, but those of a worker's
    background loops (expiry sweeps, cache repair, queue admission), which run on clocks of
    their own whatever the requests do."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        if _from_a_request():
            seen.append(args[2])

    sa_event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", record)


@contextmanager
def transactions(engine: AsyncEngine) -> Iterator[list[str]]:
    """The transaction boundaries ("begin", "commit", "rollback"), in order, of the
    connections that sent statements of requests while the block ran; filled in when it
    ends. By connection, since a background loop's session may end in a task of its own."""
    seen: list[str] = []
    boundaries: list[tuple[str, int]] = []
    of_requests: set[int] = set()

    def on(kind: str) -> Any:
        def record(connection: Any, *args: Any) -> None:
            boundaries.append((kind, id(connection)))

        return record

    def statement(connection: Any, *args: Any) -> None:
        if _from_a_request():
            of_requests.add(id(connection))

    listeners = {kind: on(kind) for kind in ("begin", "commit", "rollback")}
    listeners["before_cursor_execute"] = statement
    for name, listener in listeners.items():
        sa_event.listen(engine.sync_engine, name, listener)
    try:
        yield seen
    finally:
        for name, listener in listeners.items():
            sa_event.remove(engine.sync_engine, name, listener)
        seen += [kind for kind, connection in boundaries if connection in of_requests]


@contextmanager
def compiled_anew(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements of requests that SQLAlchemy compiled while the block ran instead of
    taking them from its cache of compiled statements (SAVEPOINTs, which have nothing to
    compile, left out)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement, context = args[2], args[4]
        bookkeeping = statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
        hit = context is not None and context.cache_hit is CacheStats.CACHE_HIT
        if _from_a_request() and not (hit or bookkeeping):
            seen.append(statement)

    sa_event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", record)


# How long a test waits for the transaction it blocked to be seen waiting: on a loaded
# two-core machine a blocked read was once seen waiting only after 15 s (not explained).
LOCK_WAIT_PATIENCE_SECONDS = 30


async def until_a_backend_waits_on_a_lock(engine: AsyncEngine, waiter: asyncio.Task[Any]) -> None:
    """Returns once some transaction waits on a lock (within LOCK_WAIT_PATIENCE_SECONDS).
    Fails at once, with what `waiter` (the task meant to wait) ended with, should it end
    first; fails after that time with where `waiter` stood, the engine's pool and
    PostgreSQL's sessions, and cancels it, so that it does not run on into the next test."""
    try:
        async with asyncio.timeout(LOCK_WAIT_PATIENCE_SECONDS):
            while not await _lock_waits(engine):
                if waiter.done():
                    raise AssertionError(f"ended without waiting on a lock: {waiter.result()!r}")
                await asyncio.sleep(0.01)
    except TimeoutError:
        stood = io.StringIO()
        waiter.print_stack(file=stood)
        waiter.cancel()
        raise AssertionError(
            f"no transaction waited on a lock within {LOCK_WAIT_PATIENCE_SECONDS} s.\n"
            f"{stood.getvalue()}"
            f"pool: {engine.pool.status()}\nsessions: {await _sessions(engine)}"
        ) from None


async def _lock_waits(engine: AsyncEngine) -> int:
    """Each look in a transaction of its own: a wait that begins after a look is seen by the
    next, whatever PostgreSQL keeps of pg_stat_activity within one transaction."""
    async with engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return int(await conn.scalar(text(query)) or 0)


async def _sessions(engine: AsyncEngine) -> str:
    """What every client session of PostgreSQL is doing, or why that could not be read."""
    try:
        async with asyncio.timeout(5), engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT pid, state, wait_event_type, wait_event, left(query, 120) AS query "
                    "FROM pg_stat_activity WHERE backend_type = 'client backend'"
                )
            )
            return "\n".join(str(tuple(row)) for row in rows)
    except TimeoutError:
        return "no connection within 5 s"
