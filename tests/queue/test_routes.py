"""The waiting room through the API, on real PostgreSQL and Valkey: settings by the event's
organizer, joining and places, admission by the app's own loop, the pass the hold route
asks for, leaving, pausing, and an honest 503 while Redis is down."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.auth.tokens import Principal, issue_access_token
from seatlock.embedded.host import free_port
from seatlock.models import Role
from seatlock.queue.passes import Passes
from seatlock.settings import Settings
from seatlock.testing.accounts import mint_accounts
from tests.clients import Client, ClientWith, assert_problem
from tests.factories import EventFixture, create_event
from tests.ops.test_metrics import scrape, value

PATIENCE_SECONDS = 15.0


def _organizer(settings: Settings, event: EventFixture) -> dict[str, str]:
    principal = Principal(
        event.organizer_id, Role.ORGANIZER, f"organizer-{event.organizer_id}@example.test"
    )
    return {"Authorization": f"Bearer {issue_access_token(settings, principal)}"}


def _room(**changes: Any) -> dict[str, Any]:
    opens = datetime.now(UTC) - timedelta(hours=2)
    return {"enabled": True, "opens_at": opens.isoformat(), "admit_per_minute": 600} | changes


async def _queued_event(
    client: Client, engine: AsyncEngine, settings: Settings, **room: Any
) -> EventFixture:
    event = await create_event(engine)
    response = await client.put(
        f"/api/events/{event.id}/queue", json=_room(**room), headers=_organizer(settings, event)
    )
    assert response.status_code == 200, response.text
    return event


def _hold_body(event: EventFixture, n: int = 0) -> dict[str, Any]:
    return {"seat_ids": [str(event.seat_ids[n])]}


async def _admitted(client: Client, event: EventFixture, buyer: dict[str, str]) -> dict[str, Any]:
    """The buyer's place once the app's admission loop let them in."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        response = await client.get(f"/api/events/{event.id}/queue/me", headers=buyer)
        assert response.status_code == 200, response.text
        place: dict[str, Any] = response.json()
        if place["state"] == "admitted":
            return place
        assert time.monotonic() < deadline, place
        await asyncio.sleep(0.1)


async def test_only_the_organizer_or_an_admin_sets_the_room_up(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    event = await create_event(engine)
    [buyer] = await mint_accounts(engine, settings.jwt_secret, 1)
    [stranger] = await mint_accounts(engine, settings.jwt_secret, 1, Role.ORGANIZER)
    [admin] = await mint_accounts(engine, settings.jwt_secret, 1, Role.ADMIN)
    path = f"/api/events/{event.id}/queue"

    assert_problem(await client.put(path, json=_room(), headers=buyer), 403)
    assert_problem(await client.put(path, json=_room(), headers=stranger), 404)
    assert_problem(await client.get(path, headers=_organizer(settings, event)), 404)
    response = await client.put(path, json=_room(max_shopping=50), headers=admin)

    assert response.status_code == 200, response.text
    room = response.json()
    assert room["admit_per_minute"] == 600
    assert room["max_shopping"] == 50
    assert room["pass_seconds"] == 900
    assert room["live"] == {"waiting": 0, "shopping": 0, "served": 0, "admitted_last_minute": 0}
    shown = await client.get(path, headers=_organizer(settings, event))
    assert shown.json() == room


async def test_bad_room_settings_are_refused_and_change_nothing(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    event = await create_event(engine)
    organizer = _organizer(settings, event)
    path = f"/api/events/{event.id}/queue"
    late = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    neither = await client.put(path, json=_room(admit_per_minute=None), headers=organizer)
    assert assert_problem(neither, 422)["field"] == "admit_per_minute"
    after_start = await client.put(path, json=_room(opens_at=late), headers=organizer)
    assert assert_problem(after_start, 422)["field"] == "opens_at"
    assert_problem(await client.put(path, json=_room(pass_seconds=5), headers=organizer), 400)
    assert_problem(await client.put(path, json=_room(rate=5), headers=organizer), 400)

    assert_problem(await client.get(path, headers=organizer), 404)


async def test_a_queued_event_takes_holds_only_with_the_buyers_own_live_pass(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    event = await _queued_event(client, engine, settings)
    buyer, other = await mint_accounts(engine, settings.jwt_secret, 2)
    holds = f"/api/events/{event.id}/holds"

    refused = await client.post(holds, json=_hold_body(event), headers=buyer)
    assert_problem(refused, 403, "queue-pass-required")
    joined = await client.post(f"/api/events/{event.id}/queue/join", headers=buyer)
    assert joined.status_code == 200, joined.text
    assert joined.json()["state"] in {"waiting", "admitted"}
    place = await _admitted(client, event, buyer)
    pass_header = {"Queue-Pass": place["pass"]}

    foreign = await client.post(holds, json=_hold_body(event), headers=other | pass_header)
    assert_problem(foreign, 403, "queue-pass-required")
    forged = {"Queue-Pass": place["pass"][:-4] + "AAAA"}
    assert_problem(await client.post(holds, json=_hold_body(event), headers=buyer | forged), 403)
    held = await client.post(holds, json=_hold_body(event), headers=buyer | pass_header)
    assert held.status_code == 201, held.text


async def test_a_pass_for_another_event_or_run_out_is_refused(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    event = await _queued_event(client, engine, settings)
    [buyer] = await mint_accounts(engine, settings.jwt_secret, 1)
    account = uuid.UUID((await client.get("/api/auth/me", headers=buyer)).json()["id"])
    passes = Passes(settings)
    past = datetime.now(UTC) - timedelta(seconds=5)
    soon = datetime.now(UTC) + timedelta(minutes=5)
    holds = f"/api/events/{event.id}/holds"

    for token in (
        passes.issue(event.id, account, 1, past),
        passes.issue(uuid.uuid4(), account, 1, soon),
    ):
        refused = await client.post(
            holds, json=_hold_body(event), headers=buyer | {"Queue-Pass": token}
        )
        assert_problem(refused, 403, "queue-pass-required")


async def test_leaving_gives_up_the_pass(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    event = await _queued_event(client, engine, settings)
    [buyer] = await mint_accounts(engine, settings.jwt_secret, 1)
    await client.post(f"/api/events/{event.id}/queue/join", headers=buyer)
    place = await _admitted(client, event, buyer)

    left = await client.delete(f"/api/events/{event.id}/queue/me", headers=buyer)

    assert left.status_code == 204
    refused = await client.post(
        f"/api/events/{event.id}/holds",
        json=_hold_body(event),
        headers=buyer | {"Queue-Pass": place["pass"]},
    )
    assert "given up" in assert_problem(refused, 403, "queue-pass-required")["detail"]
    assert_problem(await client.get(f"/api/events/{event.id}/queue/me", headers=buyer), 404)
    assert_problem(await client.delete(f"/api/events/{event.id}/queue/me", headers=buyer), 404)


async def test_an_event_without_a_room_is_untouched(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    event = await create_event(engine)
    [buyer] = await mint_accounts(engine, settings.jwt_secret, 1)

    held = await client.post(f"/api/events/{event.id}/holds", json=_hold_body(event), headers=buyer)

    assert held.status_code == 201, held.text
    joined = await client.post(f"/api/events/{event.id}/queue/join", headers=buyer)
    assert_problem(joined, 404)


async def test_before_the_sale_places_are_hidden_until_the_draw(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    now = datetime.now(UTC)
    event = await create_event(engine, sale_starts_at=now + timedelta(hours=1))
    organizer = _organizer(settings, event)
    path = f"/api/events/{event.id}/queue"
    buyers = await mint_accounts(engine, settings.jwt_secret, 3)
    later = (now + timedelta(minutes=30)).isoformat()
    await client.put(path, json=_room(opens_at=later), headers=organizer)
    assert (
        "opens at"
        in assert_problem(await client.post(f"{path}/join", headers=buyers[0]), 409)["detail"]
    )

    response = await client.put(path, json=_room(), headers=organizer)
    assert response.status_code == 200, response.text
    for buyer in buyers:
        assert (await client.post(f"{path}/join", headers=buyer)).status_code == 200

    place = (await client.get(f"{path}/me", headers=buyers[0])).json()
    assert place["state"] == "waiting"
    assert place["position"] is None
    assert place["waiting"] == 3
    assert datetime.fromisoformat(place["draw_at"]) == now + timedelta(hours=1)
    status = await client.get(f"{path}/status")
    assert status.headers["cache-control"] == "public, max-age=1"
    figures = status.json()
    assert (figures["joining_open"], figures["sale_started"]) == (True, False)
    assert (figures["waiting"], figures["served"]) == (3, 0)


async def test_positions_after_the_start_come_with_an_estimate(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    # One buyer a minute: nobody is let in during the test.
    event = await _queued_event(client, engine, settings, admit_per_minute=1)
    path = f"/api/events/{event.id}/queue"
    buyers = await mint_accounts(engine, settings.jwt_secret, 3)
    for buyer in buyers:
        await client.post(f"{path}/join", headers=buyer)

    place = (await client.get(f"{path}/me", headers=buyers[2])).json()

    assert place == {
        "state": "waiting",
        "position": 3,
        "ahead": 2,
        "waiting": 3,
        "estimated_wait_seconds": 180,
        "draw_at": None,
        "pass": None,
        "pass_expires_at": None,
    }


async def test_a_paused_room_lets_nobody_in_until_resumed(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    event = await _queued_event(client, engine, settings)
    organizer = _organizer(settings, event)
    path = f"/api/events/{event.id}/queue"
    [buyer] = await mint_accounts(engine, settings.jwt_secret, 1)
    paused = await client.post(f"{path}/pause", headers=organizer)
    assert paused.json()["paused"] is True
    # At once: the admission loops still step the room with the rules they read before.
    await client.post(f"{path}/join", headers=buyer)

    # Several admission steps pass (one a second) without letting anyone in.
    await asyncio.sleep(2.5)
    place = (await client.get(f"{path}/me", headers=buyer)).json()
    assert (place["state"], place["estimated_wait_seconds"]) == ("waiting", None)
    resumed = await client.post(f"{path}/resume", headers=organizer)

    assert resumed.json()["paused"] is False
    assert (await _admitted(client, event, buyer))["pass"]
    live = (await client.get(path, headers=organizer)).json()["live"]
    assert live == {"waiting": 0, "shopping": 1, "served": 1, "admitted_last_minute": 1}


async def test_joining_and_places_answer_503_while_redis_is_down(
    client_with: ClientWith, engine: AsyncEngine, settings: Settings, client: Client
) -> None:
    event = await _queued_event(client, engine, settings)
    [buyer] = await mint_accounts(engine, settings.jwt_secret, 1)
    async with client_with(redis_url=f"redis://127.0.0.1:{free_port()}/0") as down:
        for response in (
            await down.post(f"/api/events/{event.id}/queue/join", headers=buyer),
            await down.get(f"/api/events/{event.id}/queue/me", headers=buyer),
        ):
            assert_problem(response, 503)
            assert response.headers["retry-after"] == "1"


async def test_a_pause_with_redis_down_answers_503_and_is_kept(
    client_with: ClientWith, engine: AsyncEngine, settings: Settings, client: Client
) -> None:
    event = await _queued_event(client, engine, settings)
    organizer = _organizer(settings, event)
    path = f"/api/events/{event.id}/queue"
    async with client_with(redis_url=f"redis://127.0.0.1:{free_port()}/0") as down:
        paused = await down.post(f"{path}/pause", headers=organizer)

    assert_problem(paused, 503)
    assert paused.headers["retry-after"] == "1"
    # Saved in PostgreSQL: the admission loops read it within their interval.
    assert (await client.get(path, headers=organizer)).json()["paused"] is True


async def test_the_metrics_show_each_rooms_buyers(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    event = await _queued_event(client, engine, settings, max_shopping=1)
    first, second = await mint_accounts(engine, settings.jwt_secret, 2)
    [admin] = await mint_accounts(engine, settings.jwt_secret, 1, Role.ADMIN)
    await client.post(f"/api/events/{event.id}/queue/join", headers=first)
    await _admitted(client, event, first)
    await client.post(f"/api/events/{event.id}/queue/join", headers=second)

    samples = await scrape(client, admin)

    room = str(event.id)
    assert value(samples, "seatlock_queue_waiting", event=room) == 1
    assert value(samples, "seatlock_queue_shopping", event=room) == 1
    assert value(samples, "seatlock_queue_admitted_total", event=room) == 1


async def test_passes_outlive_a_redis_that_lost_its_data(
    client: Client, engine: AsyncEngine, settings: Settings, redis: Redis
) -> None:
    event = await _queued_event(client, engine, settings)
    [buyer] = await mint_accounts(engine, settings.jwt_secret, 1)
    await client.post(f"/api/events/{event.id}/queue/join", headers=buyer)
    place = await _admitted(client, event, buyer)

    await redis.flushall()

    held = await client.post(
        f"/api/events/{event.id}/holds",
        json=_hold_body(event),
        headers=buyer | {"Queue-Pass": place["pass"]},
    )
    assert held.status_code == 201, held.text
    # The places went with the data: the room says so, and joining again works.
    assert_problem(await client.get(f"/api/events/{event.id}/queue/me", headers=buyer), 404)
    again = await client.post(f"/api/events/{event.id}/queue/join", headers=buyer)
    assert again.json()["state"] in {"waiting", "admitted"}


async def test_the_room_outlives_a_restart_of_the_service(
    client_with: ClientWith, engine: AsyncEngine, settings: Settings, client: Client
) -> None:
    event = await _queued_event(client, engine, settings, admit_per_minute=1)
    buyers = await mint_accounts(engine, settings.jwt_secret, 2)
    for buyer in buyers:
        await client.post(f"/api/events/{event.id}/queue/join", headers=buyer)
    before = (await client.get(f"/api/events/{event.id}/queue/me", headers=buyers[1])).json()

    async with client_with() as restarted:
        after = await restarted.get(f"/api/events/{event.id}/queue/me", headers=buyers[1])
        room = await restarted.get(
            f"/api/events/{event.id}/queue", headers=_organizer(settings, event)
        )

    assert after.json() == before
    assert before["position"] == 2
    assert room.json()["admit_per_minute"] == 1
