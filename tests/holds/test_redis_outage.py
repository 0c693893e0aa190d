"""The service against Redis as it may be in production: down (holds fail fast with 503,
everything else keeps working), back (holds recover without a restart), or a cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.app import create_app
from seatlock.embedded.valkey import EmbeddedValkey
from seatlock.settings import Settings
from tests.clients import UserFactory
from tests.factories import create_event

# Generous next to the 0.5 s Redis timeout: what matters is that a request is bounded
# by the timeout, not that it takes some exact time.
FAIL_FAST_BOUND_SECONDS = 3.0


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey(tmp_path / "valkey")
    server.start()
    yield server
    server.stop()


async def test_holds_fail_fast_and_recover_when_redis_returns(
    own_valkey: EmbeddedValkey, settings: Settings, engine: AsyncEngine, make_user: UserFactory
) -> None:
    event = await create_event(engine)
    seat1, seat2 = (str(s) for s in event.seat_ids[:2])
    buyer = await make_user()
    app = create_app(msgspec.structs.replace(settings, redis_url=own_valkey.url))
    async with AsyncTestClient(app=app) as client:
        held = await client.post(
            f"/api/events/{event.id}/holds", json={"seat_ids": [seat1]}, headers=buyer
        )
        assert held.status_code == 201

        own_valkey.stop()
        started = time.monotonic()
        refused = await client.post(
            f"/api/events/{event.id}/holds", json={"seat_ids": [seat2]}, headers=buyer
        )
        elapsed = time.monotonic() - started

        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert elapsed < FAIL_FAST_BOUND_SECONDS
        assert (
            await client.get(f"/api/holds/{held.json()['id']}", headers=buyer)
        ).status_code == 503
        # Everything that does not need Redis keeps working.
        assert (await client.get("/api/auth/me", headers=buyer)).status_code == 200
        assert (await client.get("/health/live")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgres"] == "ok"
        assert ready.json()["checks"]["redis"].startswith("unreachable")

        own_valkey.start()
        again = await client.post(
            f"/api/events/{event.id}/holds", json={"seat_ids": [seat2]}, headers=buyer
        )
        assert again.status_code == 201
        # The append-only file kept the first hold across the restart.
        assert (
            await client.get(f"/api/holds/{held.json()['id']}", headers=buyer)
        ).status_code == 200


async def test_the_service_starts_while_redis_is_down(
    settings: Settings, engine: AsyncEngine, make_user: UserFactory
) -> None:
    closed_port = "redis://127.0.0.1:9/0"
    buyer = await make_user()
    app = create_app(msgspec.structs.replace(settings, redis_url=closed_port))
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/api/auth/me", headers=buyer)).status_code == 200
        event = await create_event(engine)
        refused = await client.post(
            f"/api/events/{event.id}/holds",
            json={"seat_ids": [str(event.seat_ids[0])]},
            headers=buyer,
        )
        assert refused.status_code == 503


async def test_the_service_holds_seats_on_a_redis_cluster(
    cluster_url: str, settings: Settings, engine: AsyncEngine, make_user: UserFactory
) -> None:
    event = await create_event(engine)
    seats = [str(s) for s in event.seat_ids[:2]]
    buyer, rival = await make_user(), await make_user()
    app = create_app(msgspec.structs.replace(settings, redis_url=cluster_url, redis_cluster=True))
    async with AsyncTestClient(app=app) as client:
        held = await client.post(
            f"/api/events/{event.id}/holds", json={"seat_ids": seats}, headers=buyer
        )
        refused = await client.post(
            f"/api/events/{event.id}/holds", json={"seat_ids": seats[1:]}, headers=rival
        )
        seat_map = await client.get(f"/api/events/{event.id}/seats", headers=buyer)
        booked = await client.post(
            "/api/bookings",
            json={"hold_id": held.json()["id"]},
            headers={**buyer, "Idempotency-Key": "cluster"},
        )

    assert held.status_code == 201
    assert refused.status_code == 409
    assert refused.json()["conflicts"] == seats[1:]
    assert [s["mine"] for s in seat_map.json()["seats"][:2]] == [True, True]
    assert booked.status_code == 201
