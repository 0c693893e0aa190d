"""The seat layout: its order and indexes, its versions and caching, who sees it, its
compression, and the per-process cache that serves it without PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, get
from litestar.response import ServerSentEvent
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seatlock.app import compression
from seatlock.availability.layout import LayoutCache, LayoutCategory, build_layout
from seatlock.events.layouts import natural
from seatlock.holds.on_sale import OnSaleCache
from seatlock.models import EventStatus, Role
from tests.clients import Client, UserFactory, assert_problem
from tests.events.eventdata import block, category, create_event, people, publish, seat_map
from tests.factories import create_event as insert_event
from tests.statements import statements

# Sections, rows and categories out of order, labels that sort naturally, listed rows,
# accessible seats and a second category: everything the order has to get right.
MIXED_MAP = seat_map(
    **{
        "10": [block(["B", "A"], [3, 1, 2])],
        "B": [block(("9", "11"), (1, 3), "VIP"), block(["2"], [5, 4], accessible=True)],
        "9": [block(["Box 10", "Box 9"], (1, 2), "VIP")],
    }
)
MIXED_CATEGORIES = [category(), category("VIP", 9000)]


def _layout_url(event_id: str) -> str:
    return f"/api/events/{event_id}/layout"


async def _event_on_sale(client: Client, owner: dict[str, str], **changes: Any) -> str:
    event_id: str = (await create_event(client, owner, **changes))["id"]
    await publish(client, owner, event_id)
    return event_id


async def _new_layout(client: Client, event_id: str, old_version: str) -> dict[str, Any]:
    """The layout once the app has noticed a change (its on-sale cache re-reads events
    every two seconds)."""
    for _ in range(50):
        response = await client.get(_layout_url(event_id))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["version"] != old_version:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError("the layout did not change")


def _flat(layout: dict[str, Any]) -> list[dict[str, Any]]:
    """The layout's seats in index order, each with its place, from the rows' arrays."""
    seats: list[dict[str, Any]] = []
    for row in layout["rows"]:
        for i, seat_id in enumerate(row["seat_ids"]):
            assert row["first_index"] + i == len(seats)
            seats.append(
                {
                    "id": seat_id,
                    "section": layout["sections"][row["section"]]["name"],
                    "row": row["row"],
                    "number": row["numbers"][i],
                    "category": layout["price_categories"][row["price_categories"][i]]["id"],
                    "accessible": row["accessible"][i],
                }
            )
    return seats


async def test_the_order_and_indexes_follow_the_seat_map(
    client: Client, make_user: UserFactory
) -> None:
    owner = await make_user(Role.ORGANIZER)
    event_id = await _event_on_sale(
        client, owner, seat_map=MIXED_MAP, price_categories=MIXED_CATEGORIES
    )
    response = await client.get(_layout_url(event_id))
    assert response.status_code == 200, response.text
    layout = response.json()
    seats = _flat(layout)

    stored = (await client.get(f"/api/events/{event_id}/seats")).json()["seats"]
    expected = sorted(stored, key=lambda s: (natural(s["section"]), natural(s["row"]), s["number"]))
    assert [s["id"] for s in seats] == [s["id"] for s in expected]
    assert seats == [
        {
            "id": s["id"],
            "section": s["section"],
            "row": s["row"],
            "number": s["number"],
            "category": s["price_category_id"],
            "accessible": s["accessible"],
        }
        for s in expected
    ]
    assert [s["name"] for s in layout["sections"]] == ["9", "10", "B"]
    assert [(r["row"], r["numbers"]) for r in layout["rows"][:2]] == [
        ("Box 9", [1, 2]),
        ("Box 10", [1, 2]),
    ]
    assert [
        r["row"] for r in layout["rows"] if layout["sections"][r["section"]]["name"] == "B"
    ] == [
        "2",
        "9",
        "10",
        "11",
    ]
    assert layout["seat_count"] == len(stored) == 4 + 6 + 9 + 2
    assert [(s["first_index"], s["seat_count"]) for s in layout["sections"]] == [
        (0, 4),
        (4, 6),
        (10, 11),
    ]
    detail = (await client.get(f"/api/events/{event_id}")).json()
    assert [
        {k: c[k] for k in ("id", "name", "price_minor", "currency")}
        for c in layout["price_categories"]
    ] == detail["price_categories"]
    assert {c["name"]: c["seat_count"] for c in layout["price_categories"]} == {
        "VIP": 4 + 9,
        "Standard": 6 + 2,
    }
    assert layout["event_id"] == event_id


async def test_the_etag_is_the_version_and_a_match_is_304(
    client: Client, make_user: UserFactory
) -> None:
    event_id = await _event_on_sale(client, await make_user(Role.ORGANIZER))
    first = await client.get(_layout_url(event_id))
    version = first.json()["version"]
    assert first.headers["etag"] == f'"{version}"'
    assert first.headers["cache-control"] == "public, max-age=60, stale-while-revalidate=600"

    for tag in (f'"{version}"', f'W/"{version}"', f'"other", "{version}"', "*"):
        again = await client.get(_layout_url(event_id), headers={"If-None-Match": tag})
        assert again.status_code == 304, tag
        assert again.content == b""
        assert again.headers["etag"] == f'"{version}"'
        assert "public" in again.headers["cache-control"]
    other = await client.get(_layout_url(event_id), headers={"If-None-Match": '"other"'})
    assert other.status_code == 200
    assert other.json() == first.json()


async def test_a_seat_map_change_gets_a_new_version_served(
    client: Client, make_user: UserFactory
) -> None:
    owner = await make_user(Role.ORGANIZER)
    event_id = await _event_on_sale(client, owner)
    old = (await client.get(_layout_url(event_id))).json()
    url = f"/api/events/{event_id}"

    grown = seat_map(A=[block(("1", "3"), (1, 5))])
    assert (await client.patch(url, json={"seat_map": grown}, headers=owner)).status_code == 200
    new = await _new_layout(client, event_id, old["version"])
    assert new["seat_count"] == old["seat_count"] + 5
    assert _flat(new)[:10] == _flat(old)
    stale = await client.get(_layout_url(event_id), headers={"If-None-Match": old["version"]})
    assert stale.status_code == 200

    repriced = [category(price=5000)]
    changed = await client.patch(url, json={"price_categories": repriced}, headers=owner)
    assert changed.status_code == 200, changed.text
    priced = await _new_layout(client, event_id, new["version"])
    assert priced["price_categories"][0]["price_minor"] == 5000

    # The same map again is counted as a change, yet its layout keeps its version.
    same = await client.patch(url, json={"seat_map": grown}, headers=owner)
    assert same.status_code == 200
    await asyncio.sleep(2.2)
    assert (await client.get(_layout_url(event_id))).json()["version"] == priced["version"]


async def test_a_draft_is_seen_by_its_organizer_and_admins_only(
    client: Client, make_user: UserFactory
) -> None:
    who = await people(make_user)
    event_id = (await create_event(client, who["owner"]))["id"]
    for name in ("anonymous", "user", "other_organizer"):
        assert_problem(await client.get(_layout_url(event_id), headers=who[name]), 404)
    for name in ("owner", "admin"):
        response = await client.get(_layout_url(event_id), headers=who[name])
        assert response.status_code == 200, name
        assert response.headers["cache-control"] == "private, no-store"
        assert response.json()["seat_count"] == 10
    assert_problem(await client.get(_layout_url(str(uuid.uuid4()))), 404)

    await publish(client, who["owner"], event_id)
    assert (await client.get(_layout_url(event_id))).status_code == 200
    closed = {"status": "closed"}
    patched = await client.patch(f"/api/events/{event_id}", json=closed, headers=who["owner"])
    assert patched.status_code == 200
    response = await client.get(_layout_url(event_id))
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("public")


BIG_MAP = seat_map(**{f"S{i}": [block(("1", "10"), (1, 20))] for i in range(5)})


async def test_large_answers_are_gzipped(client: Client, make_user: UserFactory) -> None:
    event_id = await _event_on_sale(client, await make_user(Role.ORGANIZER), seat_map=BIG_MAP)
    plain = await client.get(_layout_url(event_id), headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    zipped = await client.get(_layout_url(event_id), headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert zipped.headers["etag"] == plain.headers["etag"]
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
    assert zipped.json() == plain.json()
    assert plain.json()["seat_count"] == 1000

    seats = await client.get(f"/api/events/{event_id}/seats", headers={"Accept-Encoding": "gzip"})
    assert seats.headers["content-encoding"] == "gzip"
    assert len(seats.json()["seats"]) == 1000
    small = await client.get("/health/live", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


async def test_a_stream_is_compressed_event_by_event() -> None:
    """Server-sent events pass the compression one by one: each is readable as soon as it
    is sent, not when the stream ends."""
    sent: list[str] = []

    async def ticks() -> AsyncIterator[str]:
        for n in range(3):
            sent.append(f"tick {n}")
            yield f"tick {n}"

    @get("/stream", sync_to_thread=False)
    def stream() -> ServerSentEvent:
        return ServerSentEvent(ticks())

    app = Litestar([stream], compression_config=compression())
    messages: list[dict[str, Any]] = []
    readable: list[tuple[int, str]] = []
    inflate = zlib.decompressobj(wbits=31)

    done = asyncio.Event()

    async def send(message: Any) -> None:
        messages.append(message)
        if message["type"] == "http.response.body":
            readable.append((len(sent), inflate.decompress(message["body"]).decode()))
            if not message.get("more_body"):
                done.set()

    async def receive() -> Any:
        # A server reports the client gone once the answer is complete.
        await done.wait()
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/stream",
        "raw_path": b"/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"accept-encoding", b"gzip"), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    start = messages[0]
    assert (b"content-encoding", b"gzip") in start["headers"]
    ticks_read = [(count, text) for count, text in readable if "tick" in text]
    assert ticks_read == [(n + 1, f"data: tick {n}\r\n\r\n") for n in range(3)]


def test_every_seat_has_its_index_and_foreign_ids_none() -> None:
    rng = random.Random(7)
    categories = [LayoutCategory(uuid.uuid4(), name, 100, "EUR") for name in ("a", "b", "c")]
    places = [(f"S{s}", str(r), n) for s in range(4) for r in range(1, 26) for n in range(1, 51)]
    seats = [
        (uuid.UUID(int=rng.getrandbits(128)), *place, rng.choice(categories).id, n % 7 == 0)
        for n, place in enumerate(places)
    ]
    rng.shuffle(seats)
    layout = build_layout(uuid.uuid4(), categories, seats)

    assert len(layout) == len(seats) == 5000
    by_place = {(s[1], s[2], s[3]): s for s in seats}
    numbers = [c.id for c in categories]
    for index, place in enumerate(sorted(places, key=lambda p: (p[0], int(p[1]), p[2]))):
        seat_id, _, _, _, category_id, _ = by_place[place]
        assert layout.index_of(seat_id) == index
        assert layout.index_of(str(seat_id)) == index
        assert layout.index_of(str(seat_id).upper()) == index
        assert layout.section_of(index) == int(place[0][1:])
        assert layout.category_of(index) == numbers.index(category_id)
    for foreign in (uuid.uuid4(), str(uuid.uuid4()), "", "not a seat", "-", "f" * 33, "1" * 300):
        assert layout.index_of(foreign) is None
    assert layout.seats_per_section() == [1250] * 4
    assert layout.seats_per_category() == [sum(s[4] == c.id for s in seats) for c in categories]
    assert build_layout(layout.event_id, categories, reversed(seats)).version == layout.version
    first_id, section, row, number, category_id, accessible = seats[0]
    other = next(c.id for c in categories if c.id != category_id)
    moved = [(first_id, section, row, number, other, accessible), *seats[1:]]
    assert build_layout(layout.event_id, categories, moved).version != layout.version


def test_ids_sharing_their_top_half_are_told_apart() -> None:
    (only,) = categories = [LayoutCategory(uuid.uuid4(), "a", 1, "EUR")]
    ids = [uuid.UUID(int=(5 << 64) | n) for n in (3, 1, 2)] + [uuid.UUID(int=1)]
    seats = [(seat_id, "A", "1", n, only.id, False) for n, seat_id in enumerate(ids, start=1)]
    layout = build_layout(uuid.uuid4(), categories, seats)
    assert [layout.index_of(seat_id) for seat_id in ids] == [0, 1, 2, 3]
    assert layout.index_of(uuid.UUID(int=(5 << 64) | 4)) is None
    empty = build_layout(uuid.uuid4(), categories, [])
    assert len(empty) == 0
    assert empty.index_of(ids[0]) is None
    assert empty.answer().rows == []


class CountingSessions:
    """A session factory that counts the sessions it opens."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.opened = 0

    def __call__(self) -> AsyncSession:
        self.opened += 1
        return self.sessions()


async def test_many_first_callers_share_one_read(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = await insert_event(engine, sections=("A", "B"), rows=3, seats_per_row=8)
    on_sale = OnSaleCache(sessions, lifetime_seconds=60)
    counting = CountingSessions(sessions)
    cache = LayoutCache(counting, on_sale)  # type: ignore[arg-type]

    layouts = await asyncio.gather(*(cache.layout(event.id) for _ in range(100)))
    assert counting.opened == 1
    assert all(layout is layouts[0] for layout in layouts)
    assert len(layouts[0]) == 48
    for place, seat_id in event.seats.items():
        index = layouts[0].index_of(seat_id)
        assert index == ("A", "B").index(place[0]) * 24 + (int(place[1]) - 1) * 8 + place[2] - 1

    with statements(engine) as seen:
        again = await asyncio.gather(*(cache.layout(event.id) for _ in range(100)))
    assert seen == []
    assert counting.opened == 1
    assert all(layout is layouts[0] for layout in again)


async def test_a_new_seat_map_version_is_read_once(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = await insert_event(engine)
    on_sale = OnSaleCache(sessions, lifetime_seconds=0)
    counting = CountingSessions(sessions)
    cache = LayoutCache(counting, on_sale)  # type: ignore[arg-type]
    first = await cache.layout(event.id)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "UPDATE seats SET number = number + 100 WHERE event_id = $1 AND number = 1",
            (event.id,),
        )
        await conn.exec_driver_sql(
            "UPDATE events SET seat_map_version = seat_map_version + 1 WHERE id = $1",
            (event.id,),
        )
    await on_sale.event(event.id)  # starts the refresh of the facts
    await asyncio.sleep(0.1)
    layouts = await asyncio.gather(*(cache.layout(event.id) for _ in range(50)))
    assert counting.opened == 2
    assert layouts[0].version != first.version
    assert all(layout is layouts[0] for layout in layouts)
    assert layouts[0].index_of(event.seat("A", "1", 1)) == len(first) // 2 - 1


async def test_an_event_not_on_sale_is_read_each_time(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = await insert_event(engine, status=EventStatus.CLOSED)
    counting = CountingSessions(sessions)
    cache = LayoutCache(counting, OnSaleCache(sessions))  # type: ignore[arg-type]
    await cache.layout(event.id)
    await cache.layout(event.id)
    assert counting.opened == 2


async def test_an_event_on_sale_costs_no_query_in_the_steady_state(
    client: Client, make_user: UserFactory
) -> None:
    event_id = await _event_on_sale(client, await make_user(Role.ORGANIZER))
    await client.get(_layout_url(event_id))
    with statements(client.app.state.engine) as seen:
        response = await client.get(_layout_url(event_id))
        not_modified = await client.get(
            _layout_url(event_id), headers={"If-None-Match": response.headers["etag"]}
        )
    assert response.status_code == 200
    assert not_modified.status_code == 304
    assert seen == []


def test_the_answer_is_documented(client: Client) -> None:
    schema = client.app.openapi_schema.to_schema()
    operation = schema["paths"]["/api/events/{event_id}/layout"]["get"]
    assert "index" in operation["description"]
    assert {"200", "304"} <= set(operation["responses"])
    assert {"ETag", "Cache-Control"} <= set(operation["responses"]["200"]["headers"])
    assert "If-None-Match" in {p["name"] for p in operation["parameters"]}
    rows = schema["components"]["schemas"]["LayoutRowOut"]["properties"]
    for name in ("seat_ids", "numbers", "price_categories", "accessible", "first_index"):
        assert rows[name]["description"], name
