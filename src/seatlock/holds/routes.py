"""Seat holds: buyers hold, extend and release them; ops watch and release stuck ones."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody, PathParameter

from seatlock import deps, paging
from seatlock.auth.access import ADMINS, SIGNED_IN
from seatlock.bodies import Body
from seatlock.errors import InvalidInput
from seatlock.holds import owners, placement
from seatlock.holds.replies import Hold, LiveHold
from seatlock.holds.store import HOLD_ID_PATTERN
from seatlock.queue.passes import PASS_HEADER

# A hard bound on any one request; each event's own limit is checked after parsing.
MAX_SEATS_IN_REQUEST = 100
# Ops watch many holds at once: a page of live holds may be longer than other pages.
MAX_LIVE_HOLDS_LISTED = 1000
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
HoldId = Annotated[
    str,
    PathParameter(
        pattern=HOLD_ID_PATTERN, description="the hold's id, as its creation answered it"
    ),
]


class HoldRequest(Body):
    """Either `seat_ids` (chosen seats) or `quantity` (best available), not both."""

    seat_ids: (
        Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=MAX_SEATS_IN_REQUEST)]
        | None
    ) = None
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_SEATS_IN_REQUEST)] | None = None
    price_category: Label | None = None
    section: Label | None = None


class OwnHoldOut(msgspec.Struct):
    id: str
    event_id: uuid.UUID
    seats: list[uuid.UUID]
    expires_at: datetime
    seconds_left: float
    extensions_left: int
    state: str


class LiveHoldOut(msgspec.Struct):
    id: str
    owner_id: uuid.UUID
    seats: list[uuid.UUID]
    expires_at: datetime
    seconds_left: float
    state: str


@post(
    "/events/{event_id:uuid}/holds",
    roles=SIGNED_IN,
    status_code=201,
    shed_when_busy=True,
    problems=(409, 410, 429),
)
async def create_hold(
    event_id: FromPath[uuid.UUID],
    data: JSONBody[HoldRequest],
    hold_desk: deps.Desk,
    queue_pass: Annotated[
        str | None,
        HeaderParameter(
            name=PASS_HEADER,
            max_length=2048,
            required=False,
            description="the pass the event's queue gave the caller, on a queued event",
        ),
    ] = None,
) -> Hold:
    """Holds seats of an event on sale for the event's hold TTL, all or none: chosen
    `seat_ids`, or a `quantity` of the best available adjacent seats (optionally in one
    `price_category` and `section`). A conflict answers 409 with the `conflicts` and
    their `reason`. On an event with a waiting room, only a buyer it let in may hold: the
    caller's pass goes in the Queue-Pass header (403 `queue-pass-required` without a
    valid one)."""
    if (data.seat_ids is None) == (data.quantity is None):
        raise InvalidInput("give either seat_ids or quantity")
    if data.seat_ids is not None and (data.price_category or data.section):
        raise InvalidInput("price_category and section apply to quantity only")
    holds, on_sale, caller = hold_desk.holds, hold_desk.on_sale, hold_desk.caller
    await hold_desk.rate_limits.hold(caller.id, hold_desk.address)
    event = await placement.event_on_sale(on_sale, event_id)
    if event.queue is not None:
        await hold_desk.queue.check(queue_pass, event_id, caller.id)
    if data.seat_ids is not None:
        hold = await placement.hold_chosen_seats(holds, on_sale, event, caller.id, data.seat_ids)
    else:
        assert data.quantity is not None
        hold = await placement.hold_best_available(
            on_sale.sessions,
            holds,
            event,
            caller.id,
            data.quantity,
            data.price_category,
            data.section,
        )
    return hold


@get("/holds", roles=SIGNED_IN, operation_id="listMyHolds")
async def list_own_holds(
    request: Request[Any, Any, Any],
    hold_desk: deps.Desk,
    db_session: deps.DbSession,
    limit: paging.Limit = paging.DEFAULT_LIMIT,
    cursor: paging.Cursor = None,
) -> paging.Page[OwnHoldOut]:
    """The caller's live holds on every event on sale, soonest to expire first, each with
    its seats, the seconds left and the extensions left; `state` is `converting` while a
    booking of the hold is being made. Only the caller's own holds are ever listed."""
    start = paging.rank_of(cursor)
    now, mine = await owners.live_holds(db_session, hold_desk.holds, hold_desk.caller.id)
    items = [
        OwnHoldOut(
            id=h.id,
            event_id=h.event_id,
            seats=h.seats,
            expires_at=h.expires_at,
            seconds_left=round((h.expires_at - now).total_seconds(), 3),
            extensions_left=h.extensions_left,
            state=h.state,
        )
        for h in mine[start : start + limit]
    ]
    return paging.by_rank(request, items, limit, start, len(mine))


@get("/holds/{hold_id:str}", roles=SIGNED_IN, problems=(410,))
async def get_hold(hold_id: HoldId, hold_desk: deps.Desk) -> Hold:
    """One of the caller's holds, with its seats and expiry (410 once it expired)."""
    return await hold_desk.holds.get(hold_id, hold_desk.caller.id)


@post("/holds/{hold_id:str}/extend", roles=SIGNED_IN, status_code=200, problems=(409, 410))
async def extend_hold(hold_id: HoldId, hold_desk: deps.Desk) -> Hold:
    """Slides the caller's hold's expiry by the event's hold TTL, within the event's
    extensions and absolute hold lifetime."""
    return await hold_desk.holds.extend(hold_id, hold_desk.caller.id)


@delete("/holds/{hold_id:str}", roles=SIGNED_IN, status_code=204, problems=(409, 410))
async def release_hold(hold_id: HoldId, hold_desk: deps.Desk) -> None:
    """Releases the caller's hold at once; its seats are available again."""
    await hold_desk.holds.release(hold_id, hold_desk.caller.id)


def live_holds_out(now: datetime, live: list[LiveHold]) -> list[LiveHoldOut]:
    """An event's live holds as ops see them, with the seconds left as of `now`."""
    return [
        LiveHoldOut(
            id=h.id,
            owner_id=h.owner_id,
            seats=h.seats,
            expires_at=h.expires_at,
            seconds_left=round((h.expires_at - now).total_seconds(), 3),
            state=h.state,
        )
        for h in live
    ]


@get("/admin/events/{event_id:uuid}/holds", roles=ADMINS)
async def list_live_holds(
    request: Request[Any, Any, Any],
    event_id: FromPath[uuid.UUID],
    holds: deps.Holds,
    limit: Annotated[int, paging.limit(MAX_LIVE_HOLDS_LISTED)] = paging.MAX_LIMIT,
    cursor: paging.Cursor = None,
) -> paging.Page[LiveHoldOut]:
    """The live holds of an event with owner, seats and time left (ops); soonest to
    expire first."""
    start = paging.rank_of(cursor)
    now, total, live = await holds.live_holds(event_id, limit, start)
    return paging.by_rank(request, live_holds_out(now, live), limit, start, total)


@delete("/admin/holds/{hold_id:str}", roles=ADMINS, status_code=204, problems=(409, 410))
async def force_release_hold(hold_id: HoldId, holds: deps.Holds) -> Response[None]:
    """Releases any hold, whoever owns it (ops)."""
    await holds.release(hold_id, None)
    return Response(None, status_code=204)


holds_router = Router(
    "/api",
    route_handlers=[
        create_hold,
        list_own_holds,
        get_hold,
        extend_hold,
        release_hold,
        list_live_holds,
        force_release_hold,
    ],
    tags=["holds"],
)
