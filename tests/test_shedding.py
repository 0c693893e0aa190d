"""Load shedding: a worker with `shed_backlog` holds and reads in hand refuses the next ones
at once with 503 and Retry-After, changes nothing for them, and serves everything else.
On a real socket (uvicorn in the test's loop) with real PostgreSQL and Valkey; the count
itself also against a bare ASGI app."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from typing import cast

import httpx
import msgspec
import pytest
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.app import create_app
from seatlock.embedded.valkey import EmbeddedValkey
from seatlock.holds.store import new_hold_id
from seatlock.ops.metrics import REGISTRY
from seatlock.ops.request_log import RequestObserver
from seatlock.settings import Settings
from seatlock.shedding import (
    MAX_RETRY_AFTER_SECONDS,
    Backlog,
    Overloaded,
    RetrySchedule,
    ShedRoutes,
)
from tests.clients import UserFactory, assert_problem
from tests.factories import create_event
from tests.live_server import serving_app
from tests.oracle import assert_consistent

# Long enough for a loaded two-core machine; the test waits this long at most.
PATIENCE_SECONDS = 15.0


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(PATIENCE_SECONDS):
        while not condition():
            await asyncio.sleep(0.01)


def _sample(name: str, **labels: str) -> float:
    """This process's value of a metric (the tests run one worker)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _seats(*seats: uuid.UUID) -> bytes:
    return msgspec.json.encode({"seat_ids": [str(s) for s in seats]})


async def test_a_worker_far_behind_sheds_holds_and_reads_and_serves_the_rest(
    settings: Settings,
    make_user: UserFactory,
    engine: AsyncEngine,
    frozen_valkey: EmbeddedValkey,
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    holds = f"/api/events/{event.id}/holds"
    first, second, third = event.seat_ids[:3]
    # Two holds in hand: Redis does not answer them until it is thawed.
    changed = {
        "redis_url": frozen_valkey.url,
        "redis_timeout_seconds": 60,
        "shed_backlog": 2,
        # By the count alone: the first hold waits on the frozen Redis for as long as the
        # test takes.
        "shed_wait_ms": 0,
    }
    app = create_app(msgspec.structs.replace(settings, **changed))
    # A clock that stands still: no second ends while the refusals are made.
    app.state.backlog.schedule = RetrySchedule(clock=lambda: 1000.5)
    assert frozen_valkey.process is not None
    async with serving_app(app) as live:
        os.kill(frozen_valkey.process.pid, signal.SIGSTOP)
        stalled = [
            asyncio.create_task(live.post(holds, content=_seats(seat), headers=buyer))
            for seat in (first, second)
        ]
        await _until(lambda: app.state.backlog.in_hand == 2)
        # The metrics say how close the worker is (refreshed every second).
        await _until(lambda: _sample("seatlock_backlog_peak") == 2)
        shed_before = _sample("seatlock_unavailable_total", cause="overloaded")

        shed = [
            await live.post(holds, content=_seats(third), headers=buyer),
            await live.get(f"/api/events/{event.id}/availability"),
            await live.get(f"/api/events/{event.id}/seats"),
            await live.get(f"/api/events/{event.id}"),
        ]
        shed_after = _sample("seatlock_unavailable_total", cause="overloaded")
        own_bookings = await live.get("/api/bookings/my-bookings", headers=buyer)
        alive = await live.get("/health/live")
        os.kill(frozen_valkey.process.pid, signal.SIGCONT)
        stalled_holds = await asyncio.gather(*stalled)
        held_after = await live.post(holds, content=_seats(third), headers=buyer)
        in_hand_after = app.state.backlog.in_hand

    for answer in shed:
        assert_problem(answer, 503, "overloaded")
    # Nothing was answered in the last second: two (the backlog) are sent back per second.
    assert [answer.headers["retry-after"] for answer in shed] == ["1", "1", "2", "2"]
    assert shed_after - shed_before == len(shed)
    assert _sample("seatlock_backlog_limit") == 2
    assert own_bookings.status_code == alive.status_code == 200
    assert [answer.status_code for answer in stalled_holds] == [201, 201]
    assert held_after.status_code == 201, held_after.text
    assert in_hand_after == 0
    held_seats = sorted(s for a in [*stalled_holds, held_after] for s in a.json()["seats"])
    assert held_seats == sorted(str(s) for s in (first, second, third))
    assert await assert_consistent(engine, event.id) == 0


class ReadingBodies:
    """Wraps an app: how many requests are waiting for the rest of their body."""

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


async def _half_sent(
    live: httpx.AsyncClient, path: str, buyer: dict[str, str], body: bytes, sent: asyncio.Event
) -> httpx.Response:
    """A POST whose body's last bytes arrive only once `sent` is set."""

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:1]
        await sent.wait()
        yield body[1:]

    headers = {**buyer, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
    return await live.post(path, content=chunks(), headers=headers)


async def test_half_sent_bodies_and_other_routes_in_hand_do_not_count(
    settings: Settings, make_user: UserFactory, engine: AsyncEngine
) -> None:
    # A client that stalls half-way through a hold's body holds no slot; a booking or a
    # payment waiting on PostgreSQL or its provider says nothing about how busy it is.
    event = await create_event(engine)
    buyer = await make_user()
    holds = f"/api/events/{event.id}/holds"
    app = create_app(msgspec.structs.replace(settings, shed_backlog=2, shed_wait_ms=0))
    reading = ReadingBodies(app.asgi_handler)
    app.asgi_handler = reading
    async with serving_app(app) as live:
        sent = asyncio.Event()
        bodies = [
            (holds, _seats(event.seat_ids[0])),
            (holds, _seats(event.seat_ids[1])),
            ("/api/bookings", msgspec.json.encode({"hold_id": new_hold_id(uuid.uuid4())})),
            ("/api/bookings", msgspec.json.encode({"hold_id": new_hold_id(uuid.uuid4())})),
        ]
        stalled = [
            asyncio.create_task(_half_sent(live, path, buyer, body, sent)) for path, body in bodies
        ]
        await _until(lambda: reading.waiting == len(bodies))
        in_hand_while_stalled = app.state.backlog.in_hand
        held = await live.post(holds, content=_seats(event.seat_ids[2]), headers=buyer)
        sent.set()
        answers = await asyncio.gather(*stalled)

    assert in_hand_while_stalled == 0
    assert held.status_code == 201, held.text
    assert [answer.status_code for answer in answers] == [201, 201, 410, 410]
    assert await assert_consistent(engine, event.id) == 0


async def test_a_refused_request_frees_its_slot(settings: Settings, engine: AsyncEngine) -> None:
    event = await create_event(engine)
    app = create_app(msgspec.structs.replace(settings, shed_backlog=1))
    async with serving_app(app) as live:
        unsigned = [
            await live.post(f"/api/events/{event.id}/holds", content=_seats(seat))
            for seat in event.seat_ids[:2]
        ]
        in_hand = app.state.backlog.in_hand

    assert [answer.status_code for answer in unsigned] == [401, 401]
    assert in_hand == 0


async def _answer_to_half_a_body(
    live: httpx.AsyncClient, path: str, headers: dict[str, str], body: bytes
) -> bytes:
    """The status line of the answer to a POST of which only the first byte of the body
    is ever sent (on a socket of its own: an HTTP client sends the whole body first)."""
    reader, writer = await asyncio.open_connection(live.base_url.host, live.base_url.port)
    head = [f"POST {path} HTTP/1.1", "Host: seatlock", "Content-Type: application/json"]
    head += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body[:1])
    try:
        async with asyncio.timeout(PATIENCE_SECONDS):
            return await reader.readline()
    finally:
        writer.close()


async def test_no_body_is_read_before_the_token_is_checked(
    settings: Settings, engine: AsyncEngine
) -> None:
    # The guard reads a hold's body to count the request once it is in; a caller without
    # a valid token is refused before that, with the body still on its way.
    event = await create_event(engine)
    holds = f"/api/events/{event.id}/holds"
    body = _seats(event.seat_ids[0])
    app = create_app(settings)
    async with serving_app(app) as live:
        unsigned = await _answer_to_half_a_body(live, holds, {}, body)
        forged = await _answer_to_half_a_body(
            live, holds, {"Authorization": "Bearer not-a-token"}, body
        )
        in_hand = app.state.backlog.in_hand

    assert unsigned.startswith(b"HTTP/1.1 401 "), unsigned
    assert forged.startswith(b"HTTP/1.1 401 "), forged
    assert in_hand == 0
    assert await assert_consistent(engine, event.id) == 0


def _http_scope() -> Scope:
    return cast(Scope, {"type": "http", "method": "GET", "path": "/", "headers": []})


async def _nothing() -> ReceiveMessage:
    return {"type": "http.request", "body": b"", "more_body": False}


async def test_an_answer_that_has_started_stops_counting() -> None:
    # A streamed answer goes on for as long as its client listens.
    started, finish = asyncio.Event(), asyncio.Event()

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        backlog.take(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        started.set()
        await finish.wait()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def sent(message: object) -> None:
        return None

    backlog = Backlog(streaming, limit=1)
    answer = asyncio.create_task(backlog(_http_scope(), _nothing, sent))
    await started.wait()
    while_streaming = backlog.in_hand
    finish.set()
    await answer

    assert while_streaming == 0
    assert backlog.in_hand == 0


async def test_a_request_that_fails_before_answering_stops_counting() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        backlog.take(scope)
        raise RuntimeError("a bug")

    async def sent(message: object) -> None:
        return None

    backlog = Backlog(failing, limit=1)
    with pytest.raises(RuntimeError):
        await backlog(_http_scope(), _nothing, sent)

    assert backlog.in_hand == 0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class WaitingRequests:
    """A backlog watching the wait on a clock of the test's, and requests that stay in hand
    until the test answers them."""

    def __init__(self, count: int, limit: int, max_wait: float) -> None:
        self.clock = Clock(100.0)
        self._answers = [asyncio.Event() for _ in range(count)]
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.backlog = Backlog(self._waiting, limit=limit, max_wait=max_wait, clock=self.clock)

    async def _waiting(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.backlog.take(scope)
        await self._answers[int(scope["path"].removeprefix("/"))].wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def take(self, number: int, at: float) -> None:
        self.clock.now = at

        async def sent(message: object) -> None:
            return None

        scope = _http_scope()
        scope["path"] = f"/{number}"
        self._tasks[number] = asyncio.create_task(self.backlog(scope, _nothing, sent))
        await _until(lambda: len(self._tasks) == self.backlog.in_hand + self._answered())

    def _answered(self) -> int:
        return sum(task.done() for task in self._tasks.values())

    async def answer(self, number: int) -> None:
        self._answers[number].set()
        await self._tasks[number]

    def full_at(self, now: float) -> bool:
        self.clock.now = now
        try:
            self.backlog.refuse_if_full()
        except Overloaded:
            return True
        return False


async def test_a_worker_whose_oldest_request_waited_too_long_sheds_at_half_its_limit() -> None:
    requests = WaitingRequests(3, limit=4, max_wait=0.02)
    await requests.take(0, at=100.0)
    await requests.take(1, at=100.015)
    await requests.take(2, at=100.015)
    three_fresh = requests.full_at(100.015)
    three_one_late = requests.full_at(100.025)  # the first has waited 25 ms, the others 10
    await requests.answer(0)
    two_fresh = requests.full_at(100.025)
    two_late = requests.full_at(100.04)
    await requests.answer(1)
    one_late = requests.full_at(100.04)
    await requests.answer(2)

    assert (three_fresh, three_one_late, two_fresh, two_late, one_late) == (
        False,
        True,
        False,
        True,
        False,
    )
    assert requests.backlog.in_hand == 0


async def test_a_request_answered_before_an_older_one_stops_counting_once_that_one_is() -> None:
    requests = WaitingRequests(4, limit=4, max_wait=0.02)
    await requests.take(0, at=100.0)
    await requests.take(1, at=100.001)
    await requests.take(2, at=100.019)
    await requests.answer(1)
    await requests.take(3, at=100.019)
    oldest_still_in_hand = requests.full_at(100.025)
    await requests.answer(0)
    # The oldest in hand is now the third, 6 ms old, not the second, answered already.
    after_the_oldest = requests.full_at(100.025)
    third_late = requests.full_at(100.04)
    await requests.answer(2)
    await requests.answer(3)

    assert (oldest_still_in_hand, after_the_oldest, third_late) == (True, False, True)
    assert requests.backlog.in_hand == 0


async def test_the_limit_sheds_however_fresh_the_requests_in_hand() -> None:
    async def taking(scope: Scope, receive: Receive, send: Send) -> None:
        backlog.take(scope)

    backlog = Backlog(taking, limit=2, max_wait=60.0)
    backlog.take(_http_scope())
    backlog.take(_http_scope())

    with pytest.raises(Overloaded):
        backlog.refuse_if_full()


def _refusals(schedule: RetrySchedule, count: int, floor: int = 1) -> list[int]:
    return [schedule.retry_after(floor) for _ in range(count)]


def test_the_refused_come_back_no_faster_than_the_last_second_was_answered() -> None:
    clock = Clock(100.1)
    schedule = RetrySchedule(clock)
    for _ in range(5):
        schedule.answered()
    clock.now = 101.2

    assert _refusals(schedule, 12, floor=2) == [1] * 5 + [2] * 5 + [3] * 2


def test_an_idle_last_second_sends_back_the_floor_per_second() -> None:
    clock = Clock(100.1)
    schedule = RetrySchedule(clock)
    schedule.answered()
    clock.now = 102.5  # second 101 answered nothing

    assert _refusals(schedule, 7, floor=3) == [1, 1, 1, 2, 2, 2, 3]


def test_later_refusals_are_sent_back_after_the_earlier_ones() -> None:
    clock = Clock(100.5)
    schedule = RetrySchedule(clock)
    first = _refusals(schedule, 5, floor=2)  # to seconds 101, 101, 102, 102, 103
    clock.now = 101.7

    assert first == [1, 1, 2, 2, 3]
    # Second 103 has room for one more, then 104; no answers came in second 100.
    assert _refusals(schedule, 3, floor=2) == [2, 3, 3]


def test_retry_after_stops_growing_at_its_ceiling() -> None:
    schedule = RetrySchedule(Clock(100.5))

    told = _refusals(schedule, MAX_RETRY_AFTER_SECONDS + 5)

    assert told == [*range(1, MAX_RETRY_AFTER_SECONDS + 1), *[MAX_RETRY_AFTER_SECONDS] * 5]


class Routed:
    """Wraps the app behind the door: the requests that got past it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await self.app(scope, receive, send)


async def test_a_full_worker_refuses_shed_routes_at_the_door(
    settings: Settings, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    origin = "https://tickets.example"
    changed = {"shed_backlog": 1, "allowed_origins": origin}
    app = create_app(msgspec.structs.replace(settings, **changed))
    backlog: Backlog = app.state.backlog
    routed = Routed(backlog.app)
    backlog.app = routed
    availability = f"/api/events/{event.id}/availability"
    observer = cast(RequestObserver, app.asgi_handler)
    # A clock that stands still: the three refusals are told 1, 2 and 3 s (one a second).
    backlog.schedule = RetrySchedule(clock=lambda: 1000.5)
    async with serving_app(app) as live:
        backlog.in_hand = 1  # as if one request were in hand
        refused = await live.get(availability, headers={"Origin": origin})
        seat_map = await live.get(f"/api/events/{event.id}/seats")
        not_an_event = await live.get("/api/events/not-a-uuid/availability")
        alive = await live.get("/health/live")
        # Without the door, the guard refuses, through Litestar.
        observer.app = Backlog(routed)
        by_the_guard = await live.get(availability, headers={"Origin": origin})
        backlog.in_hand = 0
        served = await live.get(availability)

    for answer in (refused, by_the_guard, seat_map):
        assert_problem(answer, 503, "overloaded")
    assert refused.json() == by_the_guard.json()
    for header in ("content-type", "access-control-allow-origin", "access-control-expose-headers"):
        assert refused.headers[header] == by_the_guard.headers[header]
    # A page on that origin can read the answer and its Retry-After.
    assert refused.headers["access-control-allow-origin"] == origin
    assert "retry-after" in refused.headers["access-control-expose-headers"].lower()
    told = [a.headers["retry-after"] for a in (refused, seat_map, by_the_guard)]
    assert told == ["1", "2", "3"]
    assert not_an_event.status_code == 404
    assert alive.status_code == served.status_code == 200
    # The door's refusals never reached Litestar's router.
    assert routed.paths == [
        "/api/events/not-a-uuid/availability",
        "/health/live",
        availability,
        availability,
    ]


def test_shed_routes_are_told_by_method_and_path(settings: Settings) -> None:
    routes = ShedRoutes.of(create_app(settings))
    event = uuid.uuid4()

    assert routes.template("POST", f"/api/events/{event}/holds") == "/api/events/{event_id}/holds"
    assert routes.template("GET", f"/api/events/{event}/") == "/api/events/{event_id}"
    assert routes.template("GET", "/api/events") == "/api/events"
    assert routes.template("PATCH", f"/api/events/{event}") is None
    assert routes.template("GET", f"/api/events/{event}/holds") is None
    assert routes.template("GET", "/api/events/42/layout") is None
    assert routes.template("POST", "/api/bookings") is None
