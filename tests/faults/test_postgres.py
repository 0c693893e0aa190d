"""PostgreSQL going away under the service (uvicorn workers on a PostgreSQL of the test's
own): backends terminated while idle cost no request, and a `pg_ctl restart -m immediate`
under a small load of buyers answers only successes and 503s (never 500), after which every
Idempotency-Key resolves by retry, nothing is stuck and the oracle passes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import db, migrate
from seatlock.embedded.postgres import EmbeddedPostgres
from seatlock.settings import Settings
from seatlock.testing.accounts import mint_accounts
from seatlock.testing.servers import Backends
from tests.factories import create_event, scalar
from tests.faults.service import OTHER_BACKENDS, Service, eventually, running
from tests.faults.stuck import assert_nothing_stuck
from tests.oracle import assert_consistent

BUYERS = 6
SEATS_EACH = 5
# Short, so that a key whose last transaction the restart cut off is taken over soon.
LEASE_SECONDS = "2"
KEY_IN_USE = "/problems/idempotency-key-in-use"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("restarted") / "pg")
    migrate.upgrade(server.start())
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def service(postgres: EmbeddedPostgres, settings: Settings) -> Iterator[Service]:
    backends = Backends(postgres.url, settings.redis_url, settings.jwt_secret, owned=True)
    with running(backends, {"SEATLOCK_IDEMPOTENCY_LEASE_SECONDS": LEASE_SECONDS}) as service:
        yield service


@pytest.fixture
async def own_engine(postgres: EmbeddedPostgres) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(postgres.url, pool_size=2)
    yield engine
    await engine.dispose()


def restart_immediately(postgres: EmbeddedPostgres) -> None:
    """A crash and recovery: every backend dies at once, unfinished transactions are lost."""
    log = str(postgres.data_dir / "server.log")
    data = str(postgres.data_dir)
    done = postgres._run("pg_ctl", "restart", "-D", data, "-m", "immediate", "-w", "-l", log)
    assert done.returncode == 0, done.stderr


async def test_backends_terminated_while_idle_cost_no_request(
    service: Service, own_engine: AsyncEngine
) -> None:
    event = await create_event(own_engine)
    seat_map = f"/api/events/{event.id}/seats"
    async with service.client() as http:
        # Several connections in each worker's pool.
        before = await asyncio.gather(*(http.get(seat_map) for _ in range(12)))
        assert {r.status_code for r in before} == {200}
        async with own_engine.connect() as conn:
            ended = list(
                await conn.scalars(text(f"SELECT pid FROM pg_stat_activity WHERE {OTHER_BACKENDS}"))
            )
            await conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:p AS int[])) pid"),
                {"p": ended},
            )
        assert ended

        async def gone() -> bool:
            query = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)"
            return bool(await scalar(own_engine, query, p=ended) == 0)

        await eventually(gone, "the terminated backends are gone")
        after = await asyncio.gather(*(http.get(seat_map) for _ in range(12)))

    assert [r.status_code for r in after] == [200] * 12


@dataclass(frozen=True)
class Answer:
    step: str
    status: int
    retry_after: str | None
    problem: str | None


class Shopper:
    """A buyer who holds, books, pays and verifies one seat after another, sending each
    request again (with the same Idempotency-Key) for as long as the service asks to."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str], log: list[Answer]):
        self.http, self.headers, self.log = http, headers, log

    async def answered(
        self, step: str, send: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        while True:
            response = await send()
            problem = response.json().get("type") if response.status_code >= 400 else None
            self.log.append(
                Answer(step, response.status_code, response.headers.get("retry-after"), problem)
            )
            if response.status_code != 503 and problem != KEY_IN_USE:
                return response
            await asyncio.sleep(0.2)

    def post(
        self, path: str, body: object, key: str | None = None
    ) -> Callable[[], Awaitable[httpx.Response]]:
        headers = {**self.headers, "Idempotency-Key": key} if key else self.headers
        return lambda: self.http.post(path, json=body, headers=headers)

    async def checkout(self, event_id: uuid.UUID, seat: uuid.UUID) -> None:
        held = await self.answered(
            "hold", self.post(f"/api/events/{event_id}/holds", {"seat_ids": [str(seat)]})
        )
        booked = await self.answered(
            "book", self.post("/api/bookings", {"hold_id": held.json()["id"]}, str(uuid.uuid4()))
        )
        body = {"booking_id": booked.json()["id"], "method": "CARD"}
        payment = await self.answered(
            "initiate", self.post("/api/payments/initiate", body, str(uuid.uuid4()))
        )
        page = urlsplit(payment.json()["checkout_url"])
        paid = await self.answered("pay", self.post(f"{page.path}/complete?{page.query}", None))
        # The sandbox sends the browser back with the signed callback in the query string.
        callback = dict(parse_qsl(urlsplit(paid.headers["location"]).query))
        verify = {"payment_id": payment.json()["id"], "callback": callback}
        verified = await self.answered("verify", self.post("/api/payments/verify", verify))
        assert verified.json()["status"] == "succeeded", verified.text


async def test_a_restart_under_load_answers_503_or_success_and_strands_nothing(
    service: Service,
    postgres: EmbeddedPostgres,
    own_engine: AsyncEngine,
    settings: Settings,
    redis: Redis,
) -> None:
    event = await create_event(own_engine, rows=3, seats_per_row=10)
    buyers = await mint_accounts(own_engine, settings.jwt_secret, BUYERS)
    log: list[Answer] = []

    async with service.client() as http:

        async def shop(n: int) -> None:
            shopper = Shopper(http, buyers[n], log)
            for seat in event.seat_ids[n::BUYERS][:SEATS_EACH]:
                await shopper.checkout(event.id, seat)

        load = [asyncio.create_task(shop(n)) for n in range(BUYERS)]

        async def under_way() -> bool:
            return sum(a.step == "verify" for a in log) >= 3

        await eventually(under_way, "the load is under way")
        await asyncio.to_thread(restart_immediately, postgres)
        await asyncio.gather(*load)

    refused = [a for a in log if a.status >= 400]
    assert all(a.status == 503 and a.retry_after for a in refused if a.status != 409), refused
    assert all(a.problem == KEY_IN_USE and a.retry_after for a in refused if a.status == 409), (
        refused
    )
    assert any(a.status == 503 for a in log), "the restart was not felt"
    sold = BUYERS * SEATS_EACH
    assert (
        await scalar(own_engine, "SELECT count(*) FROM bookings WHERE status = 'confirmed'") == sold
    )
    assert await scalar(own_engine, "SELECT count(*) FROM payments") == sold
    await assert_nothing_stuck(own_engine, redis, event.id)
    assert await assert_consistent(own_engine, event.id) == sold
