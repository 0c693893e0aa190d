"""Shared helpers for tests of the hold layer."""

from __future__ import annotations

import uuid

from seatlock.holds.store import HoldPolicy, TakenSnapshot
from seatlock.models import SeatState

POLICY = HoldPolicy(ttl_ms=60_000, max_extensions=2, max_lifetime_ms=180_000, seat_cap=10)


def seats(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


def snapshot_of(taken: dict[uuid.UUID, SeatState]) -> TakenSnapshot:
    """A stand-in for PostgreSQL's seat states, which the script tests do not need."""

    async def snapshot(event_id: uuid.UUID) -> dict[uuid.UUID, SeatState]:
        return dict(taken)

    return snapshot
