"""Best available: a buyer who did not pick seats gets `quantity` adjacent seats of one row,
chosen and held by one Lua script over the event's layout in Redis.

The layout (rows in the order buyers prefer them: sections, then rows, in natural order;
each row's seats by number) is derived from PostgreSQL and loaded into Redis when missing.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seatlock import keys
from seatlock.errors import InvalidInput, Unavailable
from seatlock.events.layouts import seat_order
from seatlock.holds import replies
from seatlock.holds.replies import Hold, SeatsUnavailable
from seatlock.holds.store import (
    REBUILD_ATTEMPTS,
    HoldPolicy,
    HoldStore,
    TakenSnapshot,
    new_hold_id,
    placed,
    redis_or_503,
)
from seatlock.ops.metrics import HOLDS_REFUSED


@dataclass(frozen=True)
class Layout:
    categories: list[str]
    # (section, "number,seat id,category number;...") per row, the preferred row first.
    rows: list[tuple[str, str]]


# Rows per call when the layout is loaded: a few thousand seats, a few milliseconds of Redis.
ROWS_PER_CHUNK = 200

LayoutSource = Callable[[uuid.UUID], Awaitable[Layout]]


@dataclass(frozen=True)
class Wanted:
    quantity: int
    section: str | None
    category: str | None


# The price categories that seats use, numbered in the order of their names (bytewise, as
# Python sorts them).
_CATEGORIES = text(
    """
    SELECT c.name FROM price_categories c
    WHERE c.event_id = :event_id
      AND EXISTS (SELECT 1 FROM seats s WHERE s.event_id = :event_id AND s.price_category_id = c.id)
    ORDER BY c.name COLLATE "C"
    """
)
# Each row's seats as one "number,seat id,category number;..." string, built by PostgreSQL,
# so that a large map is read without a Python object per seat.
_ROWS = text(
    """
    WITH numbered AS (
      SELECT id, dense_rank() OVER (ORDER BY name COLLATE "C") AS number
      FROM price_categories
      WHERE event_id = :event_id AND name = ANY(:names)
    )
    SELECT s.section, s.row,
           string_agg(s.number || ',' || s.id || ',' || c.number, ';' ORDER BY s.number)
    FROM seats s JOIN numbered c ON c.id = s.price_category_id
    WHERE s.event_id = :event_id
    GROUP BY s.section, s.row
    """
)


def layout_source(sessions: async_sessionmaker[AsyncSession]) -> LayoutSource:
    """The event's layout read from PostgreSQL, in a session of its own."""

    async def read(event_id: uuid.UUID) -> Layout:
        async with sessions() as session:
            categories = list(await session.scalars(_CATEGORIES, {"event_id": event_id}))
            found = await session.execute(_ROWS, {"event_id": event_id, "names": categories})
            rows = sorted(found.tuples(), key=lambda row: seat_order(row[0], row[1], 0))
        return Layout(categories, [(section, seats) for section, _, seats in rows])

    return read


async def load_layout(store: HoldStore, event_id: uuid.UUID, layout: Layout) -> None:
    """Store the layout in chunks of rows; stops if another loader starts over meanwhile
    (the hold that asked then finds the layout loaded, or asks again)."""
    layout_keys = [
        keys.layout(event_id),
        keys.seat_rows(event_id),
        keys.open_rows(event_id),
        keys.reopen_rows(event_id),
    ]
    loader = secrets.token_hex(8)
    categories: list[str | int] = [len(layout.categories), *layout.categories]
    starts = range(0, max(len(layout.rows), 1), ROWS_PER_CHUNK)
    for start in starts:
        chunk = layout.rows[start : start + ROWS_PER_CHUNK]
        last = "1" if start == starts[-1] else "0"
        rows = [value for row in chunk for value in row]
        args = [loader, start + 1, last, *categories, *rows]
        if not await store.scripts.load_layout(keys=layout_keys, args=args):
            return


def _refusal(reply: list[str], wanted: Wanted) -> Exception:
    if reply[0] == "limit":
        detail = "holding these seats would pass your seat limit for this event"
        return SeatsUnavailable(detail, [], "limit")
    if reply[0] == "unknown":
        value = wanted.section if reply[1] == "section" else wanted.category
        return InvalidInput(f"{reply[1]}: this event has no {reply[1]} {value!r}", field=reply[1])
    if reply[0] == "late":
        return Unavailable("seat holds are unavailable right now; please retry shortly")
    if reply[0] == "none":
        detail = f"no {wanted.quantity} adjacent seats are available"
        return SeatsUnavailable(detail, [], "unavailable")
    return Unavailable("the seat caches could not be rebuilt; please retry")


async def hold_best(
    store: HoldStore,
    event_id: uuid.UUID,
    owner_id: uuid.UUID,
    policy: HoldPolicy,
    wanted: Wanted,
    sources: tuple[TakenSnapshot, LayoutSource],
) -> Hold:
    """Hold the best window of adjacent free seats, loading what Redis lacks first."""
    snapshot, layout = sources
    hold_id = new_hold_id(event_id)
    script_keys = [
        *store.event_keys(event_id, owner_id),
        keys.hold(event_id, hold_id),
        keys.layout(event_id),
        keys.open_rows(event_id),
        keys.reopen_rows(event_id),
    ]
    async with redis_or_503():
        for _ in range(REBUILD_ATTEMPTS):
            # A deadline per attempt: loading the caches first may take a while.
            args: list[str | int] = [
                hold_id,
                str(owner_id),
                policy.ttl_ms,
                policy.max_extensions,
                policy.max_lifetime_ms,
                policy.seat_cap,
                wanted.quantity,
                wanted.section or "",
                wanted.category or "",
                await store.deadline_ms(),
            ]
            reply = await store.scripts.best_available(keys=script_keys, args=args)
            if reply[0] == "rebuild":
                await store.load_taken(event_id, snapshot)
            elif reply[0] == "layout":
                await load_layout(store, event_id, await layout(event_id))
            else:
                break
    if reply[0] != "ok":
        refused = _refusal(reply, wanted)
        if isinstance(refused, SeatsUnavailable):
            HOLDS_REFUSED.labels(refused.reason).inc()
        raise refused
    seat_ids = replies.seat_ids_of(reply[3:])
    store.note_placed(event_id, policy)
    return placed(replies.new_hold(hold_id, event_id, owner_id, seat_ids, reply), "best_available")
