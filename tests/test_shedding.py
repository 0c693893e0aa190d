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
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.app import create_app
from seatlock.settings import Settings
from tests.clients import UserFactory, assert_problem
from tests.factories import create_event
from tests.live_server import serving_app
from tests.oracle import assert_consistent


async def _stalled_booking(
    live: httpx.AsyncClient, buyer: dict[str, str], sent: asyncio.Event
) -> httpx.Response:
    """A booking request whose body arrives only once `sent` is set: until then the worker
    has taken it and cannot answer it."""

    async def body() -> AsyncIterator[bytes]:
        yield b'{"hold_id": '
        await sent.wait()
        yield b'"no-such-hold"}'

    headers = {**buyer, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
    return await live.post("/api/bookings", content=body(), headers=headers)


async def _backlog_reaches(app: Litestar, waiting: int) -> None:
    while app.state.backlog.waiting < waiting:
        await asyncio.sleep(0.01)


async def test_a_worker_far_behind_sheds_holds_and_reads_and_serves_the_rest(
    settings: Settings, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    holds = f"/api/events/{event.id}/holds"
    one_seat = {"seat_ids": [str(event.seat_ids[0])]}
    app = create_app(msgspec.structs.replace(settings, shed_backlog=2))
    async with serving_app(app) as live:
        sent = asyncio.Event()
        stalled = [asyncio.create_task(_stalled_booking(live, buyer, sent)) for _ in range(2)]
        await _backlog_reaches(app, 2)

        shed = [
            await live.post(holds, json=one_seat, headers=buyer),
            await live.get(f"/api/events/{event.id}/availability"),
            await live.get(f"/api/events/{event.id}/seats"),
            await live.get(f"/api/events/{event.id}"),
        ]
        own_holds = await live.get("/api/holds", headers=buyer)
        alive = await live.get("/health/live")
        sent.set()
        finished = await asyncio.gather(*stalled)
        held_after = await live.post(holds, json=one_seat, headers=buyer)

    for answer in shed:
        assert_problem(answer, 503, "unavailable")
        assert answer.headers["retry-after"] == "1"
    assert own_holds.status_code == alive.status_code == 200
    assert own_holds.json()["items"] == []
    # The stalled bookings went through to the handler, which refused their unknown hold.
    assert [answer.status_code for answer in finished] == [404, 404]
    assert held_after.status_code == 201, held_after.text
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
