"""What the hold scripts answer, turned into values and domain errors."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from seatlock.errors import Busy, Conflict, Gone, NotFound, SeatConflict, Unavailable

# The reason reported when conflicts differ: the most lasting one wins.
REASON_ORDER = ("sold", "reserved", "held", "limit")


class Hold(msgspec.Struct):
    id: str
    event_id: uuid.UUID
    owner_id: uuid.UUID
    seats: list[uuid.UUID]
    expires_at: datetime
    extensions_left: int
    state: str


class LiveHold(msgspec.Struct):
    id: str
    owner_id: uuid.UUID
    seats: list[uuid.UUID]
    expires_at: datetime
    state: str


class HeldSeat(msgspec.Struct, frozen=True):
    hold_id: str
    owner_id: uuid.UUID


class SeatsUnavailable(SeatConflict):
    slug = "seats-unavailable"
    title = "Some seats cannot be held"


def from_ms(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def seat_ids_of(values: Sequence[str]) -> list[uuid.UUID]:
    return [uuid.UUID(v) for v in values]


def hold_of(hold_id: str, event_id: uuid.UUID, fields: Mapping[str, str]) -> Hold:
    """A hold from its hash (owner, seats, expires, extensions, max_extensions, state)."""
    return Hold(
        id=hold_id,
        event_id=event_id,
        owner_id=uuid.UUID(fields["owner"]),
        seats=seat_ids_of(fields["seats"].split(",")),
        expires_at=from_ms(fields["expires"]),
        extensions_left=int(fields["max_extensions"]) - int(fields["extensions"]),
        state=fields["state"],
    )


def conflict(reply: list[str]) -> SeatsUnavailable:
    pairs = list(zip(reply[1::2], reply[2::2], strict=True))
    reasons = {reason for _, reason in pairs}
    reason = next(r for r in REASON_ORDER if r in reasons)
    detail = (
        "holding these seats would pass your seat limit for this event"
        if reason == "limit"
        else "some of the seats are not available"
    )
    return SeatsUnavailable(detail, [uuid.UUID(seat) for seat, _ in pairs], reason)


def refusal(reply: list[str]) -> Exception:
    answer = reply[0]
    if answer == "not_owner":
        # Someone else's hold is reported exactly like a missing one.
        return NotFound("no such hold")
    if answer == "gone":
        return Gone("the hold has expired or was released")
    if answer == "converting":
        return Busy("the hold is being turned into a booking")
    if answer == "late":
        # Redis answered after the caller's deadline and did nothing.
        return Unavailable("seat holds are unavailable right now; please retry shortly")
    return Conflict("the hold cannot be extended any further")


def new_hold(
    hold_id: str,
    event_id: uuid.UUID,
    owner_id: uuid.UUID,
    seat_ids: Sequence[uuid.UUID],
    reply: list[Any],
) -> Hold:
    """The hold a script just made, from its {'ok', expires_ms, extensions_left, ...}."""
    return Hold(
        id=hold_id,
        event_id=event_id,
        owner_id=owner_id,
        seats=list(seat_ids),
        expires_at=from_ms(reply[1]),
        extensions_left=int(reply[2]),
        state="held",
    )
