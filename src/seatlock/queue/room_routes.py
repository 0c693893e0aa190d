"""/api/events/{id}/queue for the event's organizer and admins: setting a waiting room up,
watching it, pausing and resuming it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Router, get, post, put
from litestar.params import FromPath, JSONBody

from seatlock import deps
from seatlock.auth.access import STAFF
from seatlock.bodies import Body
from seatlock.errors import NotFound
from seatlock.events.events import managed_event
from seatlock.models import EventQueue
from seatlock.queue.figures import Figures
from seatlock.queue.gate import QueueGate
from seatlock.queue.line import queue_or_503
from seatlock.queue.rules import RoomSettings, room_of, save_room
from seatlock.redis_client import REDIS_DOWN


class RoomIn(Body):
    """An event's waiting room. Buyers may join from `opens_at` (no later than the sale's
    start); those who join before the start are put in a random order when it starts, later
    ones queue in order of arrival behind them. Admitted buyers get a pass valid for
    `pass_seconds`; the room lets in `admit_per_minute` buyers a minute and/or keeps at most
    `max_shopping` passes live at once."""

    enabled: bool
    opens_at: Annotated[datetime, msgspec.Meta(tz=True)]
    admit_per_minute: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    max_shopping: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None
    pass_seconds: Annotated[int, msgspec.Meta(ge=60, le=86_400)] = 900
    paused: bool = False


class RoomFigures(msgspec.Struct):
    waiting: int
    shopping: int
    # Passes given so far: the "now serving" number.
    served: int
    admitted_last_minute: int


class RoomOut(msgspec.Struct):
    event_id: uuid.UUID
    enabled: bool
    opens_at: datetime
    admit_per_minute: int | None
    max_shopping: int | None
    pass_seconds: int
    paused: bool
    updated_at: datetime
    # None while Redis is unreachable.
    live: RoomFigures | None


def _room_out(room: EventQueue, figures: Figures | None) -> RoomOut:
    return RoomOut(
        event_id=room.event_id,
        enabled=room.enabled,
        opens_at=room.opens_at,
        admit_per_minute=room.admit_per_minute,
        max_shopping=room.max_shopping,
        pass_seconds=room.pass_seconds,
        paused=room.paused,
        updated_at=room.updated_at,
        live=None if figures is None else RoomFigures(*figures),
    )


async def _live(gate: QueueGate, event_id: uuid.UUID) -> Figures | None:
    try:
        return await gate.line.figures(event_id)
    except REDIS_DOWN:
        return None


@put("/", roles=STAFF, operation_id="setQueue", summary="Set an event's waiting room up")
async def set_queue(
    event_id: FromPath[uuid.UUID],
    data: JSONBody[RoomIn],
    principal: deps.Caller,
    db_session: deps.DbSession,
    on_sale: deps.OnSale,
    queue_gate: deps.Queue,
) -> RoomOut:
    """Turns the event's waiting room on or off and sets its pace; a change reaches every
    worker within two seconds. The event's organizer or an admin."""
    event = await managed_event(db_session, event_id, principal, lock=True)
    settings = RoomSettings(**msgspec.structs.asdict(data))
    room = await save_room(db_session, event, settings)
    await db_session.commit()
    on_sale.forget(event_id)
    return _room_out(room, await _live(queue_gate, event_id))


async def _managed_room(
    db_session: deps.DbSession, event_id: uuid.UUID, principal: deps.Caller, *, lock: bool = False
) -> EventQueue:
    """The event's room, for the event's organizer or an admin (404 for others)."""
    await managed_event(db_session, event_id, principal, lock=lock)
    room = await room_of(db_session, event_id)
    if room is None:
        raise NotFound("this event has no queue")
    return room


@get("/", roles=STAFF, operation_id="getQueue", summary="An event's waiting room")
async def get_queue(
    event_id: FromPath[uuid.UUID],
    principal: deps.Caller,
    db_session: deps.DbSession,
    queue_gate: deps.Queue,
) -> RoomOut:
    """The room's settings with its live figures: buyers waiting, shopping (live passes)
    and served (passes given so far). The event's organizer or an admin."""
    room = await _managed_room(db_session, event_id, principal)
    return _room_out(room, await _live(queue_gate, event_id))


async def _set_paused(
    db_session: deps.DbSession,
    on_sale: deps.OnSale,
    queue_gate: QueueGate,
    event_id: uuid.UUID,
    principal: deps.Caller,
    paused: bool,
) -> RoomOut:
    room = await _managed_room(db_session, event_id, principal, lock=True)
    room.paused = paused
    await db_session.commit()
    on_sale.forget(event_id)
    async with queue_or_503():
        await queue_gate.line.mark_paused(event_id, paused)
    return _room_out(room, await _live(queue_gate, event_id))


@post("/pause", roles=STAFF, status_code=200, operation_id="pauseQueue")
async def pause_queue(
    event_id: FromPath[uuid.UUID],
    principal: deps.Caller,
    db_session: deps.DbSession,
    on_sale: deps.OnSale,
    queue_gate: deps.Queue,
) -> RoomOut:
    """Stops letting buyers in: once this answers, nobody more is let in. Those waiting
    keep their places and live passes keep working. While Redis is unreachable it answers
    503 (nobody is let in then either); sent again, it takes effect at once."""
    return await _set_paused(db_session, on_sale, queue_gate, event_id, principal, True)


@post("/resume", roles=STAFF, status_code=200, operation_id="resumeQueue")
async def resume_queue(
    event_id: FromPath[uuid.UUID],
    principal: deps.Caller,
    db_session: deps.DbSession,
    on_sale: deps.OnSale,
    queue_gate: deps.Queue,
) -> RoomOut:
    """Lets buyers in again at the room's pace (within two seconds on every worker)."""
    return await _set_paused(db_session, on_sale, queue_gate, event_id, principal, False)


room_router = Router(
    "/api/events/{event_id:uuid}/queue",
    route_handlers=[set_queue, get_queue, pause_queue, resume_queue],
    tags=["queue"],
)
