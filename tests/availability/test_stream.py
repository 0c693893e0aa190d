"""The stream of seat changes, through uvicorn on real PostgreSQL and Valkey: every kind of
change in order with consecutive versions, reconnects that lose nothing, resyncs when the
log cannot tell what was missed, and keep-alive comments."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import keys
from seatlock.availability import stream
from seatlock.embedded.valkey import EmbeddedValkey
from seatlock.holds.store import HoldStore
from seatlock.models import EventStatus
from seatlock.settings import Settings
from tests.availability.conftest import SseEvent, StreamReader, streaming
from tests.buying import booked, expire_now, hold, initiate, pay, sandbox_callback, verify
from tests.clients import UserFactory
from tests.factories import create_event
from tests.live_server import serving

# The bound: a hold's expiry reaches the stream within 2 s of its TTL.
EXPIRY_REPORTED_WITHIN_SECONDS = 2.0


def _summary(changes: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    return [(c["state"], c["cause"], c["seats"]) for c in changes]


def _count(n: int) -> Any:
    return lambda events: sum(len(e.data["changes"]) for e in events if e.event == "changes") >= n


async def test_every_kind_of_change_arrives_in_order_with_consecutive_versions(
    live: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine, store: HoldStore
) -> None:
    event = await create_event(engine, hold_ttl_seconds=2, max_hold_lifetime_seconds=2)
    buyer = await make_user()
    s1, s2, s3, s4, s5 = (str(s) for s in event.seat_ids[:5])
    async with streaming(live, event.id) as reader:
        released = await hold(live, buyer, event.id, [uuid.UUID(s1)])
        assert (await live.delete(f"/api/holds/{released}", headers=buyer)).status_code == 204
        expiring = await live.post(
            f"/api/events/{event.id}/holds", json={"seat_ids": [s2]}, headers=buyer
        )
        runs_out = datetime.fromisoformat(expiring.json()["expires_at"]).timestamp()
        await reader.until(_count(4), "the expiry")
        reported_after = time.time() - runs_out
        paid = await booked(live, buyer, event.id, [uuid.UUID(s3)])
        await pay(live, buyer, paid["id"])
        cancelled = await live.delete(f"/api/bookings/{paid['id']}", headers=buyer)
        assert cancelled.status_code == 200, cancelled.text
        unpaid = await booked(live, buyer, event.id, [uuid.UUID(s4)])
        await expire_now(engine, store, unpaid["id"])
        late = await booked(live, buyer, event.id, [uuid.UUID(s5)])
        payment = await initiate(live, buyer, late["id"])
        callback = await sandbox_callback(live, payment)
        await expire_now(engine, store, late["id"])
        verified = await verify(live, buyer, payment["id"], callback)
        assert verified.json()["status"] == "succeeded"
        events = await reader.until(_count(15), "every change")

    assert reported_after <= EXPIRY_REPORTED_WITHIN_SECONDS
    assert _summary(reader.changes()) == [
        ("held", "hold", [s1]),
        ("available", "release", [s1]),
        ("held", "hold", [s2]),
        ("available", "expiry", [s2]),
        ("held", "hold", [s3]),
        ("reserved", "booking", [s3]),
        ("sold", "payment", [s3]),
        ("available", "cancellation", [s3]),
        ("held", "hold", [s4]),
        ("reserved", "booking", [s4]),
        ("available", "booking_expiry", [s4]),
        ("held", "hold", [s5]),
        ("reserved", "booking", [s5]),
        ("available", "booking_expiry", [s5]),
        ("sold", "payment", [s5]),
    ]
    versions = [c["version"] for c in reader.changes()]
    assert versions == list(range(versions[0], versions[0] + len(versions)))
    # Each frame's id is the version after it.
    assert all(e.id == str(e.data["changes"][-1]["version"]) for e in events)


async def test_a_reconnect_with_last_event_id_gets_exactly_what_it_missed(
    live: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    s1, s2 = event.seat_ids[:2]
    async with streaming(live, event.id) as reader:
        first = await hold(live, buyer, event.id, [s1])
        seen = (await reader.until(_count(1), "the first hold"))[-1].id
    # While the client is away: another hold, and the first one released.
    await hold(live, buyer, event.id, [s2])
    await live.delete(f"/api/holds/{first}", headers=buyer)

    assert seen is not None
    async with streaming(live, event.id, {"Last-Event-ID": seen}) as again:
        await again.until(_count(2), "the missed changes")
        await hold(live, buyer, event.id, [s1])
        await again.until(_count(3), "the next change")

    assert _summary(again.changes()) == [
        ("held", "hold", [str(s2)]),
        ("available", "release", [str(s1)]),
        ("held", "hold", [str(s1)]),
    ]
    assert [c["version"] for c in again.changes()] == [int(seen) + n for n in (1, 2, 3)]


async def test_the_since_parameter_starts_from_a_snapshot_version(
    live: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    snapshot = (await live.get(f"/api/events/{event.id}/availability")).json()
    await hold(live, buyer, event.id, event.seat_ids[:1])

    path = f"/api/events/{event.id}/availability/stream?since={snapshot['version']}"
    reader = StreamReader()
    async with live.stream("GET", path) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        lines = response.aiter_lines()
        while not reader.events:
            line = await anext(lines)
            if line.startswith("data:"):
                reader.events.append(SseEvent("changes", None, line.removeprefix("data: ")))

    assert '"state":"held"' in reader.events[0].data
    assert f'"version":{snapshot["version"] + 1}' in reader.events[0].data


@pytest.mark.parametrize("behind", ["trimmed", "ahead"])
async def test_a_client_the_log_cannot_catch_up_is_told_to_resync(
    live: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine, redis: Redis, behind: str
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    await hold(live, buyer, event.id, event.seat_ids[:1])
    version = int(await redis.get(keys.seat_version(event.id)))
    await hold(live, buyer, event.id, event.seat_ids[1:2])
    if behind == "trimmed":
        # The log keeps a bounded number of changes; this client is older than all of them.
        await redis.xtrim(keys.seat_changes(event.id), maxlen=0)
        seen = version - 1
    else:
        # A version this Redis never reached (it lost its data since the client's visit).
        seen = version + 1000

    async with streaming(live, event.id, {"Last-Event-ID": str(seen)}) as reader:
        events = await reader.until(lambda e: len(e) >= 1, "a resync")
        await hold(live, buyer, event.id, event.seat_ids[2:3])
        await reader.until(_count(1), "the next change")

    current = version + 1
    assert (events[0].event, events[0].data, events[0].id) == (
        "resync",
        {"version": current},
        str(current),
    )
    assert [c["version"] for c in reader.changes()] == [current + 1]


async def test_a_stream_whose_redis_lost_its_data_resyncs_and_carries_on(
    live: httpx.AsyncClient, make_user: UserFactory, engine: AsyncEngine, redis: Redis
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    async with streaming(live, event.id) as reader:
        await hold(live, buyer, event.id, event.seat_ids[:1])
        await reader.until(_count(1), "the hold")
        await redis.flushall()
        await reader.until(lambda e: e[-1].event == "resync", "a resync")
        await hold(live, buyer, event.id, event.seat_ids[:1])
        events = await reader.until(lambda e: e[-1].event == "changes", "the change after it")

    assert [e.event for e in events] == ["changes", "resync", "changes"]
    assert _summary(events[-1].data["changes"]) == [("held", "hold", [str(event.seat_ids[0])])]


async def test_a_quiet_stream_sends_keep_alive_comments(
    live: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "KEEP_ALIVE_SECONDS", 0.2)
    event = await create_event(engine)

    async with streaming(live, event.id) as reader:
        deadline = time.monotonic() + 5
        while reader.comments.count("keep-alive") < 2:
            assert time.monotonic() < deadline, reader.comments
            await asyncio.sleep(0.05)

    assert reader.events == []


async def test_a_stream_of_an_unknown_or_hidden_event_is_404(
    live: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    draft = await create_event(engine, status=EventStatus.DRAFT)

    for event_id in (uuid.uuid4(), draft.id):
        response = await live.get(f"/api/events/{event_id}/availability/stream")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_stream_survives_a_valkey_restart(
    tmp_path: Path, settings: Settings, make_user: UserFactory, engine: AsyncEngine
) -> None:
    valkey = EmbeddedValkey(tmp_path / "valkey")
    valkey.start()
    event = await create_event(engine)
    buyer = await make_user()
    s1, s2 = event.seat_ids[:2]
    try:
        async with (
            serving(msgspec.structs.replace(settings, redis_url=valkey.url)) as live,
            streaming(live, event.id) as reader,
        ):
            paid = await booked(live, buyer, event.id, [s1])
            await reader.until(_count(2), "the booking")
            valkey.stop()  # Valkey keeps its data on disk
            # PostgreSQL frees the seat while Valkey cannot hear of it.
            cancelled = await live.delete(f"/api/bookings/{paid['id']}", headers=buyer)
            assert cancelled.status_code == 200, cancelled.text
            valkey.start()
            # Once Valkey answers, the cache is reloaded and the correction streamed.
            await reader.until(_count(3), "the freed seat")
            await hold(live, buyer, event.id, [s2])
            await reader.until(_count(4), "the next hold")
    finally:
        valkey.stop()

    assert _summary(reader.changes()) == [
        ("held", "hold", [str(s1)]),
        ("reserved", "booking", [str(s1)]),
        ("available", "refresh", [str(s1)]),
        ("held", "hold", [str(s2)]),
    ]
    versions = [c["version"] for c in reader.changes()]
    assert versions == list(range(versions[0], versions[0] + 4))
