"""The comparison design, for the benchmark only: a checkout that books seats straight in
PostgreSQL, in one transaction with SELECT ... FOR UPDATE on the seat rows, no Redis.

A separate small app served by its own uvicorn workers against the service's database; it
reads the service's access tokens, and the bookings it makes are paid through the
service's own payments API. Nothing of it is part of the product.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, delete, get, post
from litestar.datastructures import State
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from seatlock import db
from seatlock.auth.tokens import Principal, read_access_token
from seatlock.errors import Unauthorized
from seatlock.settings import Settings, read_settings

MAX_SEATS = 10

# Chosen seats, locked in a fixed order so that two checkouts cannot deadlock. Only free
# rows are locked (a row another checkout took while this one waited drops out), so that
# the lock never waits on seats being paid for.
LOCK_CHOSEN = text(
    "SELECT s.id, s.state::text AS state, p.price_minor, p.currency FROM seats s "
    "JOIN price_categories p ON p.id = s.price_category_id "
    "WHERE s.event_id = :event AND s.id = ANY(:ids) AND s.state = 'available' "
    "ORDER BY s.id FOR UPDATE OF s"
)
# Best available, the naive way: the first free seats in order, then waiting for their
# locks, taken in the same order as LOCK_CHOSEN's: locking them in seat order while chosen
# seats are locked in id order would let two checkouts deadlock (and fail with a 500).
LOCK_FIRST_FREE = text(
    "SELECT s.id, s.state::text AS state, p.price_minor, p.currency FROM seats s "
    "JOIN price_categories p ON p.id = s.price_category_id "
    "WHERE s.event_id = :event AND s.state = 'available' AND s.id IN ("
    "SELECT f.id FROM seats f WHERE f.event_id = :event AND f.state = 'available' "
    "AND (CAST(:section AS text) IS NULL OR f.section = :section) "
    "ORDER BY f.section, f.row, f.number LIMIT :quantity) "
    "ORDER BY s.id FOR UPDATE OF s"
)
EVENT = text(
    "SELECT status::text, payment_window_seconds, max_seats_per_booking FROM events "
    "WHERE id = :event"
)
INSERT_BOOKING = text(
    "INSERT INTO bookings (id, event_id, user_id, hold_id, seat_ids, status, total_minor, "
    "currency, payment_deadline) VALUES (:id, :event, :user, :hold, :seats, "
    "'pending_payment', :total, :currency, :deadline)"
)
RESERVE = text(
    "UPDATE seats SET state = 'reserved', booking_id = :booking "
    "WHERE event_id = :event AND id = ANY(:ids)"
)
# Letting go of an unpaid booking, as the service's cancellation does: for the contended
# micro benchmark, whose winners give their seats back so that the contention goes on.
CANCEL = text(
    "UPDATE bookings SET status = 'cancelled' WHERE id = :booking AND user_id = :user "
    "AND status = 'pending_payment' RETURNING event_id"
)
FREE = text(
    "UPDATE seats SET state = 'available', booking_id = NULL "
    "WHERE event_id = :event AND booking_id = :booking"
)


class CheckoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    seat_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=MAX_SEATS)] | None = None
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_SEATS)] | None = None
    section: str | None = None


class BookingOut(msgspec.Struct):
    id: uuid.UUID
    # Whose booking: the wrk script of bench/contended.py releases it with this buyer's token.
    user_id: uuid.UUID
    seats: list[uuid.UUID]
    total_minor: int
    currency: str


def _problem(status: int, title: str, **extra: Any) -> Response[bytes]:
    body = msgspec.json.encode({"title": title, "status": status, **extra})
    return Response(body, status_code=status, media_type="application/problem+json")


def _principal(request: Request[Any, Any, Any]) -> Principal | None:
    """The caller, or None without a valid access token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    settings: Settings = request.app.state.settings
    try:
        return read_access_token(settings, token.strip())
    except Unauthorized:
        return None


async def _lock_seats(
    conn: AsyncConnection, event_id: uuid.UUID, data: CheckoutRequest
) -> tuple[list[Any], list[uuid.UUID] | None]:
    """The locked rows, and the requested seats that cannot be had (None: all can)."""
    if data.seat_ids is not None:
        rows = list(await conn.execute(LOCK_CHOSEN, {"event": event_id, "ids": data.seat_ids}))
        free = {r.id for r in rows if r.state == "available"}
        missing = [s for s in data.seat_ids if s not in free]
        return rows, missing or None
    quantity = data.quantity or 1
    params = {"event": event_id, "section": data.section, "quantity": quantity}
    rows = list(await conn.execute(LOCK_FIRST_FREE, params))
    # Rows another checkout took while this one waited for their locks drop out.
    return rows, None if len(rows) == quantity else []


async def _book(
    engine: AsyncEngine, principal: Principal, event_id: uuid.UUID, data: CheckoutRequest
) -> BookingOut | Response[bytes]:
    async with engine.begin() as conn:
        event = (await conn.execute(EVENT, {"event": event_id})).first()
        if event is None or event.status != "on_sale":
            return _problem(404, "no such event on sale")
        rows, unavailable = await _lock_seats(conn, event_id, data)
        if unavailable is not None:
            await conn.rollback()
            return _problem(409, "Some seats were taken", conflicts=[str(s) for s in unavailable])
        if len({r.currency for r in rows}) != 1:
            return _problem(400, "seats priced in more than one currency")
        booking_id = uuid.uuid4()
        seat_ids = [r.id for r in rows]
        await conn.execute(
            INSERT_BOOKING,
            {
                "id": booking_id,
                "event": event_id,
                "user": principal.id,
                "hold": f"baseline.{booking_id.hex}",
                "seats": seat_ids,
                "total": sum(r.price_minor for r in rows),
                "currency": rows[0].currency,
                "deadline": datetime.now(UTC) + timedelta(seconds=event.payment_window_seconds),
            },
        )
        await conn.execute(RESERVE, {"booking": booking_id, "event": event_id, "ids": seat_ids})
    total = sum(r.price_minor for r in rows)
    return BookingOut(booking_id, principal.id, seat_ids, total, rows[0].currency)


@post("/baseline/events/{event_id:uuid}/bookings", status_code=201)
async def checkout(
    event_id: uuid.UUID, request: Request[Any, Any, Any], state: State
) -> BookingOut | Response[bytes]:
    principal = _principal(request)
    if principal is None:
        return _problem(401, "sign in")
    try:
        data = msgspec.json.decode(await request.body(), type=CheckoutRequest)
    except msgspec.DecodeError as exc:
        return _problem(400, str(exc))
    if (data.seat_ids is None) == (data.quantity is None):
        return _problem(400, "give either seat_ids or quantity")
    return await _book(state.engine, principal, event_id, data)


@delete("/baseline/bookings/{booking_id:uuid}", status_code=200)
async def cancel(
    booking_id: uuid.UUID, request: Request[Any, Any, Any], state: State
) -> Response[bytes]:
    principal = _principal(request)
    if principal is None:
        return _problem(401, "sign in")
    async with state.engine.begin() as conn:
        params = {"booking": booking_id, "user": principal.id}
        event_id = (await conn.execute(CANCEL, params)).scalar()
        if event_id is None:
            return _problem(404, "no such unpaid booking")
        await conn.execute(FREE, {"event": event_id, "booking": booking_id})
    return Response(b"", status_code=204)


@get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@asynccontextmanager
async def _engine(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # The service's pool size (SEATLOCK_DB_POOL_SIZE), so that both designs run with one.
    app.state.engine = db.create_engine(settings.database_url, settings.db_pool_size)
    try:
        yield
    finally:
        await app.state.engine.dispose()


def create_app() -> Litestar:
    return Litestar(
        route_handlers=[checkout, cancel, live],
        lifespan=[_engine],
        state=State({"settings": read_settings()}),
    )
