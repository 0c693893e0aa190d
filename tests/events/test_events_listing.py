"""GET /api/events: order, pages, filters and who sees drafts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from seatlock.models import Role
from tests.clients import Client, UserFactory, assert_problem
from tests.events.eventdata import START, create_event, moment, people, publish

DAY = timedelta(days=1)


def _on_day(day: int) -> dict[str, str]:
    """The schedule of an event `day` days after START."""
    offset = DAY * day
    return {
        "starts_at": moment(offset),
        "ends_at": moment(offset + timedelta(hours=3)),
        "sale_starts_at": moment(timedelta(days=-30)),
        "sale_ends_at": moment(offset),
    }


async def _titles(
    client: Client, headers: dict[str, str] | None = None, **params: Any
) -> list[str]:
    response = await client.get("/api/events", params=params, headers=headers or {})
    assert response.status_code == 200, response.text
    return [e["title"] for e in response.json()["items"]]


@pytest.fixture
async def calendar(client: Client, make_user: UserFactory) -> dict[str, dict[str, str]]:
    """Five published events on days 4, 0, 3, 1, 2, created in that order, and a draft."""
    who = await people(make_user)
    for day, title in (
        (4, "Jazz Night"),
        (0, "Opera Gala"),
        (3, "Rock 100% Live"),
        (1, "Jazz Brunch"),
        (2, "Ballet"),
    ):
        event = await create_event(client, who["owner"], title=title, **_on_day(day))
        await publish(client, who["owner"], event["id"])
    await create_event(client, who["owner"], title="Secret Draft", **_on_day(5))
    return who


async def test_events_come_by_start_time(client: Client, calendar: dict[str, Any]) -> None:
    assert await _titles(client) == [
        "Opera Gala",
        "Jazz Brunch",
        "Ballet",
        "Rock 100% Live",
        "Jazz Night",
    ]


async def test_drafts_are_listed_only_for_their_organizer_and_admins(
    client: Client, calendar: dict[str, dict[str, str]]
) -> None:
    for actor, sees_draft in (
        ("anonymous", False),
        ("user", False),
        ("owner", True),
        ("other_organizer", False),
        ("admin", True),
    ):
        titles = await _titles(client, calendar[actor])
        assert ("Secret Draft" in titles) is sees_draft, actor
        assert len(titles) == (6 if sees_draft else 5), actor


async def test_pages_walk_through_every_event_once(
    client: Client, calendar: dict[str, dict[str, str]]
) -> None:
    seen: list[str] = []
    link: str | None = "/api/events?limit=2&status=draft&status=on_sale"
    while link is not None:
        page = (await client.get(link, headers=calendar["admin"])).json()
        assert (len(page["items"]), page["limit"], page["total"]) <= (2, 2, None)
        seen += [e["title"] for e in page["items"]]
        link = page["next"]
        if link is not None:
            assert "status=draft&status=on_sale" in link
            assert link.endswith(f"&cursor={page['next_cursor']}")
    assert seen == await _titles(client, calendar["admin"])
    assert len(seen) == 6


async def test_a_page_that_ends_exactly_has_no_next_cursor(
    client: Client, calendar: dict[str, Any]
) -> None:
    page = (await client.get("/api/events", params={"limit": 5})).json()
    assert len(page["items"]) == 5
    assert (page["next_cursor"], page["next"]) == (None, None)


async def test_filters_by_status(client: Client, calendar: dict[str, dict[str, str]]) -> None:
    owner = calendar["owner"]
    assert await _titles(client, owner, status="draft") == ["Secret Draft"]
    assert await _titles(client, status="draft") == []
    assert len(await _titles(client, owner, status=["draft", "on_sale"])) == 6
    assert await _titles(client, status="closed") == []


async def test_filters_by_start_date(client: Client, calendar: dict[str, Any]) -> None:
    titles = await _titles(
        client, starts_from=moment(DAY), starts_until=(START + DAY * 3).isoformat()
    )
    # From is inclusive, until is exclusive.
    assert titles == ["Jazz Brunch", "Ballet"]


async def test_filters_by_text_in_the_title(client: Client, calendar: dict[str, Any]) -> None:
    assert await _titles(client, q="jazz") == ["Jazz Brunch", "Jazz Night"]
    # Wildcards are literal text.
    assert await _titles(client, q="100%") == ["Rock 100% Live"]
    assert await _titles(client, q="%") == ["Rock 100% Live"]
    assert await _titles(client, q="_") == []


BAD_QUERIES: dict[str, tuple[dict[str, Any], int]] = {
    "limit zero": ({"limit": 0}, 400),
    "limit over the cap": ({"limit": 101}, 400),
    "not a status": ({"status": "sold_out"}, 400),
    "not a date": ({"starts_from": "soon"}, 400),
    "a date without offset": ({"starts_from": "2031-01-01T00:00:00"}, 422),
    "a forged cursor": ({"cursor": "bm90LWEtY3Vyc29y"}, 422),
    "a cursor cut short": ({"cursor": "bm90L"}, 422),
    "not base64": ({"cursor": "!!!"}, 400),
    "empty text": ({"q": ""}, 400),
    "long text": ({"q": "x" * 101}, 400),
    "a control character in the text": ({"q": "jazz\x00"}, 400),
}


@pytest.mark.parametrize(("params", "status"), BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
async def test_bad_queries_are_refused(client: Client, params: dict[str, Any], status: int) -> None:
    assert_problem(await client.get("/api/events", params=params), status)


async def test_organizers_see_only_their_own_drafts(client: Client, make_user: UserFactory) -> None:
    first, second = await make_user(Role.ORGANIZER), await make_user(Role.ORGANIZER)
    await create_event(client, first, title="First's draft")
    await create_event(client, second, title="Second's draft")
    assert await _titles(client, first) == ["First's draft"]
    assert await _titles(client, second) == ["Second's draft"]
