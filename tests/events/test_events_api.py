"""Who may call each events endpoint, drafts, details, status changes, delete and cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import Role
from tests.clients import Client, ClientWith, UserFactory, assert_problem
from tests.events.eventdata import (
    ACTORS,
    People,
    count_rows,
    create_event,
    event_body,
    people,
    publish,
    take_seats,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
async def client(client_with: ClientWith, tmp_path: Path) -> AsyncIterator[Client]:
    """The app, keeping uploaded images in a directory of the test."""
    async with client_with(image_dir=str(tmp_path)) as client:
        yield client


async def _statuses(
    client: Client, who: People, method: str, url: str, **kwargs: Any
) -> dict[str, int]:
    """The status each caller gets, asking in the order of ACTORS."""
    codes = {}
    for actor in ACTORS:
        response = await client.request(method, url, headers=who[actor], **kwargs)
        codes[actor] = response.status_code
    return codes


def _expect(*codes: int) -> dict[str, int]:
    return dict(zip(ACTORS, codes, strict=True))


async def test_everyone_lists_events(client: Client, make_user: UserFactory) -> None:
    who = await people(make_user)
    assert await _statuses(client, who, "GET", "/api/events") == _expect(200, 200, 200, 200, 200)


async def test_a_draft_is_found_only_by_its_organizer_and_admins(
    client: Client, make_user: UserFactory
) -> None:
    who = await people(make_user)
    event = await create_event(client, who["owner"])
    for url in (f"/api/events/{event['id']}", f"/api/events/{event['id']}/seats"):
        assert await _statuses(client, who, "GET", url) == _expect(404, 404, 200, 404, 200)


async def test_a_published_event_is_public(client: Client, make_user: UserFactory) -> None:
    who = await people(make_user)
    event = await create_event(client, who["owner"])
    await publish(client, who["owner"], event["id"])
    for url in (f"/api/events/{event['id']}", f"/api/events/{event['id']}/seats"):
        assert await _statuses(client, who, "GET", url) == _expect(200, 200, 200, 200, 200)


async def test_organizers_and_admins_create_events(client: Client, make_user: UserFactory) -> None:
    who = await people(make_user)
    codes = await _statuses(client, who, "POST", "/api/events", json=event_body())
    assert codes == _expect(401, 403, 201, 201, 201)


async def test_only_the_owner_and_admins_change_an_event(
    client: Client, make_user: UserFactory
) -> None:
    who = await people(make_user)
    draft = await create_event(client, who["owner"])
    published = await create_event(client, who["owner"])
    await publish(client, who["owner"], published["id"])
    for event in (draft, published):
        url = f"/api/events/{event['id']}"
        codes = await _statuses(client, who, "PATCH", url, json={"title": "Renamed"})
        assert codes == _expect(401, 403, 200, 404, 200)


async def test_only_admins_delete_events(client: Client, make_user: UserFactory) -> None:
    who = await people(make_user)
    event = await create_event(client, who["owner"])
    codes = await _statuses(client, who, "DELETE", f"/api/events/{event['id']}")
    assert codes == _expect(401, 403, 403, 403, 204)


async def test_only_the_owner_and_admins_upload_images(
    client: Client, make_user: UserFactory
) -> None:
    who = await people(make_user)
    event = await create_event(client, who["owner"])
    url = f"/api/events/{event['id']}/image"
    codes = await _statuses(client, who, "POST", url, files={"file": ("a.png", PNG, "image/png")})
    assert codes == _expect(401, 403, 201, 404, 201)
    detail = (await client.get(f"/api/events/{event['id']}", headers=who["owner"])).json()
    image = await _statuses(client, who, "GET", detail["image_url"])
    assert image == _expect(200, 200, 200, 200, 200)


async def test_another_organizers_event_is_not_found_even_when_published(
    client: Client, make_user: UserFactory
) -> None:
    who = await people(make_user)
    event = await create_event(client, who["owner"])
    await publish(client, who["owner"], event["id"])
    response = await client.patch(
        f"/api/events/{event['id']}", json={"status": "cancelled"}, headers=who["other_organizer"]
    )
    assert_problem(response, 404)
    assert (await client.get(f"/api/events/{event['id']}")).json()["status"] == "on_sale"


async def test_details_carry_categories_and_seat_counts(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    await take_seats(engine, event["id"], "sold", 2)
    await take_seats(engine, event["id"], "reserved", 1)
    detail = (await client.get(f"/api/events/{event['id']}", headers=owner)).json()
    assert detail["status"] == "draft"
    assert detail["seat_counts"] == {"total": 10, "available": 7, "reserved": 1, "sold": 2}
    assert [(c["name"], c["price_minor"], c["currency"]) for c in detail["price_categories"]] == [
        ("Standard", 4500, "EUR")
    ]
    assert detail["description"] == "An evening of music"
    assert (detail["max_seats_per_booking"], detail["hold_ttl_seconds"]) == (10, 600)
    assert detail["image_url"] is None


async def test_creation_answers_every_seat_created(client: Client, make_user: UserFactory) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    assert event["status"] == "draft"
    assert event["seat_counts"]["total"] == len(event["seats"]) == 10
    places = {(s["section"], s["row"], s["number"]) for s in event["seats"]}
    assert places == {("A", row, n) for row in ("1", "2") for n in range(1, 6)}
    seats = (await client.get(f"/api/events/{event['id']}/seats", headers=owner)).json()
    assert {s["id"] for s in seats["seats"]} == {s["id"] for s in event["seats"]}


async def test_the_seat_map_read_shows_postgresql_state(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    await publish(client, owner, event["id"])
    await take_seats(engine, event["id"], "sold", 1)
    seats = (await client.get(f"/api/events/{event['id']}/seats")).json()["seats"]
    first = seats[0]
    assert (first["section"], first["row"], first["number"], first["state"]) == (
        "A",
        "1",
        1,
        "sold",
    )
    assert set(first) == {
        "id",
        "section",
        "row",
        "number",
        "price_category_id",
        "accessible",
        "state",
        "mine",
    }
    assert [s["state"] for s in seats].count("available") == 9


async def test_organizers_may_not_raise_the_seats_per_booking_limit(
    client: Client, make_user: UserFactory
) -> None:
    owner, admin = await make_user(Role.ORGANIZER), await make_user(Role.ADMIN)
    refused = await client.post(
        "/api/events", json=event_body(max_seats_per_booking=11), headers=owner
    )
    assert_problem(refused, 403)
    event = await create_event(client, owner, max_seats_per_booking=10)
    url = f"/api/events/{event['id']}"
    assert_problem(await client.patch(url, json={"max_seats_per_booking": 20}, headers=owner), 403)
    raised = await client.patch(url, json={"max_seats_per_booking": 20}, headers=admin)
    assert raised.json()["max_seats_per_booking"] == 20
    # Sending the admin's value back unchanged is no attempt to raise it.
    same = await client.patch(
        url, json={"max_seats_per_booking": 20, "title": "Renamed"}, headers=owner
    )
    assert same.status_code == 200
    lowered = await client.patch(url, json={"max_seats_per_booking": 4}, headers=owner)
    assert lowered.json()["max_seats_per_booking"] == 4


async def test_patch_changes_only_the_fields_given(client: Client, make_user: UserFactory) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    response = await client.patch(
        f"/api/events/{event['id']}",
        json={"venue": "Small Hall", "hold_ttl_seconds": 300, "payment_window_seconds": 600},
        headers=owner,
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["venue"], changed["hold_ttl_seconds"], changed["payment_window_seconds"]) == (
        "Small Hall",
        300,
        600,
    )
    assert changed["title"] == event["title"]
    assert changed["seat_counts"]["total"] == 10


async def test_status_follows_the_lifecycle(client: Client, make_user: UserFactory) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    url = f"/api/events/{event['id']}"

    async def move(status: str) -> int:
        return (await client.patch(url, json={"status": status}, headers=owner)).status_code

    assert await move("closed") == 409
    assert await move("on_sale") == 200
    assert await move("on_sale") == 200  # asking for the current status changes nothing
    assert await move("draft") == 409
    assert await move("closed") == 200
    assert await move("on_sale") == 200
    assert await move("cancelled") == 200
    assert await move("on_sale") == 409
    assert await move("draft") == 409


async def test_an_event_that_is_over_cannot_go_on_sale(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE events SET starts_at = now() - interval '3 hours', "
                "ends_at = now() - interval '1 hour', sale_starts_at = now() - interval '9 days',"
                " sale_ends_at = now() - interval '2 hours' WHERE id = :id"
            ),
            {"id": event["id"]},
        )
    response = await client.patch(
        f"/api/events/{event['id']}", json={"status": "on_sale"}, headers=owner
    )
    assert_problem(response, 422)


async def test_a_cancelled_event_stays_visible_and_frozen(
    client: Client, make_user: UserFactory
) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    await publish(client, owner, event["id"])
    url = f"/api/events/{event['id']}"
    assert (await client.patch(url, json={"status": "cancelled"}, headers=owner)).status_code == 200
    shown = await client.get(url)
    assert shown.status_code == 200
    assert shown.json()["status"] == "cancelled"
    assert_problem(await client.patch(url, json={"title": "Back"}, headers=owner), 409)
    listed = (await client.get("/api/events", params={"status": "cancelled"})).json()
    assert [e["id"] for e in listed["items"]] == [event["id"]]


async def test_deleting_an_event_without_bookings_removes_everything(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner, admin = await make_user(Role.ORGANIZER), await make_user(Role.ADMIN)
    event = await create_event(client, owner)
    await publish(client, owner, event["id"])
    response = await client.delete(f"/api/events/{event['id']}", headers=admin)
    assert response.status_code == 204
    assert_problem(await client.get(f"/api/events/{event['id']}", headers=admin), 404)
    for table in ("events", "price_categories", "seats"):
        assert await count_rows(engine, table, event["id"]) == 0
    assert_problem(await client.delete(f"/api/events/{event['id']}", headers=admin), 404)


async def test_an_event_with_bookings_can_only_be_cancelled(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner, admin = await make_user(Role.ORGANIZER), await make_user(Role.ADMIN)
    for state in ("reserved", "sold"):
        event = await create_event(client, owner)
        await publish(client, owner, event["id"])
        await take_seats(engine, event["id"], state, 3)
        url = f"/api/events/{event['id']}"
        refused = await client.delete(url, headers=admin)
        assert_problem(refused, 409)
        assert "cancel" in refused.json()["detail"]
        assert await count_rows(engine, "seats", event["id"]) == 10
        cancelled = await client.patch(url, json={"status": "cancelled"}, headers=admin)
        assert cancelled.status_code == 200
        # Cancelling keeps every seat as it was, for the refunds.
        assert cancelled.json()["seat_counts"][state] == 3
