"""/api/events/{id}/queue for buyers: joining an event's waiting room, watching one's
place and getting the pass the hold route asks for, leaving; and the room's public figures."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

import msgspec
from litestar import Response, Router, delete, get, post
from litestar.params import FromPath

from seatlock import deps
from seatlock.auth.access import PUBLIC, SIGNED_IN
from seatlock.errors import Conflict, NotFound
from seatlock.holds.placement import NotOnSale
from seatlock.models import EventStatus
from seatlock.queue.gate import QueueGate
from seatlock.queue.line import Place, queue_or_503
from seatlock.queue.passes import runs_out_at
from seatlock.queue.rules import QueueRules

# The public figures are the same for every caller and move every second.
STATUS_CACHING: Final = "public, max-age=1"


class RoomStatusOut(msgspec.Struct):
    event_id: uuid.UUID
    joining_open: bool
    sale_started: bool
    paused: bool
    admit_per_minute: int | None
    waiting: int
    shopping: int
    served: int
    admitted_last_minute: int


class PlaceOut(msgspec.Struct, omit_defaults=False):
    """`waiting`: `position` (1 is next) and `ahead` once the sale started; before it,
    places are drawn at random at `draw_at` and not shown. `admitted`: the `pass` to send
    as the Queue-Pass header of hold requests, until `pass_expires_at`. `expired`: the pass
    ran out; joining again queues at the back."""

    state: str
    position: int | None = None
    ahead: int | None = None
    waiting: int | None = None
    estimated_wait_seconds: int | None = None
    draw_at: datetime | None = None
    queue_pass: str | None = msgspec.field(default=None, name="pass")
    pass_expires_at: datetime | None = None


async def _queued(room: deps.RoomDesk, event_id: uuid.UUID) -> QueueRules:
    event = await room.on_sale.event(event_id)
    if event is None or event.status is EventStatus.DRAFT:
        raise NotFound("no such event")
    if event.queue is None:
        raise NotFound("this event has no queue")
    return event.queue


def _estimate(rules: QueueRules, ahead: int) -> int | None:
    """Seconds until a place `ahead` others is let in, at the room's rate; unknown while
    paused or when only free shopping slots let buyers in."""
    if rules.admit_per_minute is None or rules.paused:
        return None
    return round((ahead + 1) * 60 / rules.admit_per_minute)


def _place_out(gate: QueueGate, rules: QueueRules, account_id: uuid.UUID, place: Place) -> PlaceOut:
    if place.state == "admitted":
        assert place.number is not None
        assert place.runs_out_ms is not None
        runs_out = runs_out_at(place.runs_out_ms)
        token = gate.passes.issue(rules.event_id, account_id, place.number, runs_out)
        return PlaceOut("admitted", queue_pass=token, pass_expires_at=runs_out)
    if place.state == "expired":
        assert place.runs_out_ms is not None
        return PlaceOut("expired", pass_expires_at=runs_out_at(place.runs_out_ms))
    if place.state == "absent":
        raise NotFound("you are not in this event's queue: join it first")
    assert place.ahead is not None
    if datetime.now(UTC) < rules.sale_starts_at:
        return PlaceOut("waiting", waiting=place.waiting, draw_at=rules.sale_starts_at)
    return PlaceOut(
        "waiting",
        position=place.ahead + 1,
        ahead=place.ahead,
        waiting=place.waiting,
        estimated_wait_seconds=_estimate(rules, place.ahead),
    )


@get("/status", roles=PUBLIC, operation_id="getQueueStatus", summary="A waiting room's figures")
async def queue_status(event_id: FromPath[uuid.UUID], room: deps.Room) -> Response[RoomStatusOut]:
    """The same answer for everyone, cacheable for a second: buyers waiting, shopping,
    served (the "now serving" number), the pace, and whether joining and the sale are
    open."""
    rules = await _queued(room, event_id)
    async with queue_or_503():
        figures = await room.gate.line.figures(event_id)
    now = datetime.now(UTC)
    status = RoomStatusOut(
        event_id=event_id,
        joining_open=rules.opens_at <= now < rules.sale_ends_at,
        sale_started=rules.sale_starts_at <= now,
        paused=rules.paused,
        admit_per_minute=rules.admit_per_minute,
        waiting=figures.waiting,
        shopping=figures.shopping,
        served=figures.served,
        admitted_last_minute=figures.admitted_last_minute,
    )
    return Response(status, headers={"Cache-Control": STATUS_CACHING})


@post("/join", roles=SIGNED_IN, status_code=200, operation_id="joinQueue", problems=(409,))
async def join_queue(event_id: FromPath[uuid.UUID], room: deps.Room) -> PlaceOut:
    """Takes a place in the event's queue, one per account: joining again keeps it (and a
    buyer already let in keeps the pass). Opens at the room's `opens_at`."""
    rules, caller = await _queued(room, event_id), room.caller
    now = datetime.now(UTC)
    if now < rules.opens_at:
        raise Conflict(f"the queue opens at {rules.opens_at.isoformat()}")
    if now >= rules.sale_ends_at:
        raise NotOnSale("the event's sale is over")
    drawn = room.gate.passes.drawn_place(event_id, caller.id)
    async with queue_or_503():
        place = await room.gate.line.place(rules, caller.id, drawn, join=True)
    return _place_out(room.gate, rules, caller.id, place)


@get("/me", roles=SIGNED_IN, operation_id="getMyQueuePlace")
async def my_place(event_id: FromPath[uuid.UUID], room: deps.Room) -> PlaceOut:
    """The caller's place: one Redis read (O(log n)); the pass once let in."""
    rules, caller = await _queued(room, event_id), room.caller
    drawn = room.gate.passes.drawn_place(event_id, caller.id)
    async with queue_or_503():
        place = await room.gate.line.place(rules, caller.id, drawn, join=False)
    return _place_out(room.gate, rules, caller.id, place)


@delete("/me", roles=SIGNED_IN, status_code=204, operation_id="leaveQueue")
async def leave_queue(event_id: FromPath[uuid.UUID], room: deps.Room) -> None:
    """Leaves the queue: a place gives way to the next buyer; a live pass is given up,
    freeing its shopping slot, and is refused from then on."""
    await _queued(room, event_id)
    async with queue_or_503():
        was = await room.gate.line.leave(event_id, room.caller.id)
    if was == "absent":
        raise NotFound("you are not in this event's queue")


queue_router = Router(
    "/api/events/{event_id:uuid}/queue",
    route_handlers=[queue_status, join_queue, my_place, leave_queue],
    tags=["queue"],
)
