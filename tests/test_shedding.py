"""Load shedding on a real socket (uvicorn in the test's loop, real PostgreSQL and Valkey): a
worker with more requests waiting for their answer than `shed_backlog` refuses new holds
and reads at once with 503 and Retry-After, changes nothing for them, and serves
everything else; a streamed answer stops counting once it has started."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import msgspec
from litestar import Litestar
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.app import create_app
from seatlock.settings import Settings
from tests.clients import UserFactory, assert_problem
from tests.factories import create_event
from tests.live_server import serving_app
from tests.oracle import assert_consistent


async def _stalled(
    live: httpx.AsyncClient, path: str, buyer: dict[str, str], body: bytes, sent: asyncio.Event
) -> httpx.Response:
    """A POST whose body's last bytes arrive only once `sent` is set: until then the worker
    has it in hand and cannot answer it."""

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:1]
        await sent.wait()
        yield body[1:]

    headers = {**buyer, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
    return await live.post(path, content=chunks(), headers=headers)


class ReadingBodies:
    """Wraps an app: how many requests are past their guard, waiting for the rest of their
    body (a handler reads its body after the guard)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reads = 0

        async def counted() -> ReceiveMessage:
            nonlocal reads
            reads += 1
            if reads == 2:
                self.waiting += 1
            return await receive()

        await self.app(scope, counted, send)


async def _backlog_reaches(app: Litestar, waiting: int) -> None:
    while app.state.backlog.waiting < waiting:
        await asyncio.sleep(0.01)


def _seats(*seats: uuid.UUID) -> bytes:
    return msgspec.json.encode({"seat_ids": [str(s) for s in seats]})


async def test_a_worker_far_behind_sheds_holds_and_reads_and_serves_the_rest(
    settings: Settings, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    holds = f"/api/events/{event.id}/holds"
    first, second, third = event.seat_ids[:3]
    app = create_app(msgspec.structs.replace(settings, shed_backlog=2))
    async with serving_app(app) as live:
        sent = asyncio.Event()
        stalled = [
            asyncio.create_task(_stalled(live, holds, buyer, _seats(seat), sent))
            for seat in (first, second)
        ]
        await _backlog_reaches(app, 2)

        shed = [
            await live.post(holds, content=_seats(third), headers=buyer),
            await live.get(f"/api/events/{event.id}/availability"),
            await live.get(f"/api/events/{event.id}/seats"),
            await live.get(f"/api/events/{event.id}"),
        ]
        own_holds = await live.get("/api/holds", headers=buyer)
        alive = await live.get("/health/live")
        sent.set()
        stalled_holds = await asyncio.gather(*stalled)
        held_after = await live.post(holds, content=_seats(third), headers=buyer)
        waiting_after = app.state.backlog.waiting

    for answer in shed:
        assert_problem(answer, 503, "unavailable")
        assert answer.headers["retry-after"] == "1"
    assert own_holds.status_code == alive.status_code == 200
    assert own_holds.json()["items"] == []
    assert [answer.status_code for answer in stalled_holds] == [201, 201]
    assert held_after.status_code == 201, held_after.text
    assert waiting_after == 0
    assert await assert_consistent(engine, event.id) == 0


async def test_requests_of_other_routes_in_hand_do_not_count(
    settings: Settings, make_user: UserFactory, engine: AsyncEngine
) -> None:
    # A booking or a payment waiting on PostgreSQL or on its provider says nothing about how
    # busy the worker is.
    event = await create_event(engine)
    buyer = await make_user()
    app = create_app(msgspec.structs.replace(settings, shed_backlog=1))
    reading = ReadingBodies(app.asgi_handler)
    app.asgi_handler = reading
    async with serving_app(app) as live:
        sent = asyncio.Event()
        booking = b'{"hold_id": "no-such-hold"}'
        stalled = [
            asyncio.create_task(_stalled(live, "/api/bookings", buyer, booking, sent))
            for _ in range(3)
        ]
        while reading.waiting < 3:
            await asyncio.sleep(0.01)
        waiting_while_stalled = app.state.backlog.waiting
        held = await live.post(
            f"/api/events/{event.id}/holds", content=_seats(event.seat_ids[0]), headers=buyer
        )
        sent.set()
        bookings = await asyncio.gather(*stalled)

    assert waiting_while_stalled == 0
    assert held.status_code == 201, held.text
    assert {answer.status_code for answer in bookings} == {404}
    await assert_consistent(engine, event.id)


async def test_a_streamed_answer_stops_counting_once_it_has_started(
    settings: Settings, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    app = create_app(msgspec.structs.replace(settings, shed_backlog=1))
    async with serving_app(app) as live:
        stream = f"/api/events/{event.id}/availability/stream"
        async with live.stream("GET", stream) as changes:
            waiting_while_streaming = app.state.backlog.waiting
            held = await live.post(
                f"/api/events/{event.id}/holds",
                json={"seat_ids": [str(event.seat_ids[0])]},
                headers=buyer,
            )

    assert changes.status_code == 200
    assert waiting_while_streaming == 0
    assert held.status_code == 201, held.text
    await assert_consistent(engine, event.id)
