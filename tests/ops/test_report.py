"""The hold report on real PostgreSQL and Valkey: after a churn of concurrent holds,
bookings and releases it agrees with an oracle over every seat (PostgreSQL's states and the
live holds); top holders and holds expiring soon for a constructed case; who may ask."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from seatlock import keys
from seatlock.embedded.host import free_port
from seatlock.holds.placement import taken_snapshot
from seatlock.holds.store import HoldPolicy, HoldStore
from seatlock.models import Role
from seatlock.redis_client import hash_field
from tests.buying import churn
from tests.clients import Client, ClientWith, UserFactory, assert_problem
from tests.factories import EventFixture, create_event

STATES = ("available", "held", "reserved", "sold")


async def _add_vip(engine: AsyncEngine, event: EventFixture, seats: list[uuid.UUID]) -> uuid.UUID:
    """A second price category, given to `seats`."""
    vip = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO price_categories (id, event_id, name, price_minor, currency) "
                "VALUES (:id, :event, 'VIP', 9000, 'USD')"
            ),
            {"id": vip, "event": event.id},
        )
        await conn.execute(
            text("UPDATE seats SET price_category_id = :vip WHERE id = ANY(:ids)"),
            {"vip": vip, "ids": seats},
        )
    event.category_ids["VIP"] = vip
    return vip


async def _oracle(
    engine: AsyncEngine, store: HoldStore, event_id: uuid.UUID
) -> tuple[dict[str, Counter[str]], dict[str, Counter[str]], Counter[str]]:
    """Every seat's state from PostgreSQL, `held` for the live holds' seats that PostgreSQL
    has available; counted per section, per category id and in total."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT id, section, price_category_id, state FROM seats WHERE event_id = :e"),
                {"e": event_id},
            )
        ).all()
    held = set(await store.held_seats(event_id))
    sections: dict[str, Counter[str]] = {}
    categories: dict[str, Counter[str]] = {}
    total: Counter[str] = Counter()
    for seat_id, section, category_id, state in rows:
        shown = "held" if state == "available" and seat_id in held else str(state)
        for counter in (
            sections.setdefault(section, Counter()),
            categories.setdefault(str(category_id), Counter()),
            total,
        ):
            counter[shown] += 1
            counter["seats"] += 1
    return sections, categories, total


def _counts(part: dict[str, Any]) -> Counter[str]:
    return Counter({name: part[name] for name in ("seats", *STATES) if part[name]})


async def test_the_report_agrees_with_postgresql_and_the_holds_after_a_churn(
    client: Client, make_user: UserFactory, engine: AsyncEngine, store: HoldStore, redis: Redis
) -> None:
    event = await create_event(engine, sections=("A", "B"), rows=5, seats_per_row=10)
    await _add_vip(engine, event, event.seat_ids[::3])
    # Sold before Redis ever saw the event: the report's cache is loaded from PostgreSQL.
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE seats SET state = 'sold' WHERE id = ANY(:ids)"),
            {"ids": event.seat_ids[5:9]},
        )
    admin = await make_user(Role.ADMIN)
    buyers = [await make_user() for _ in range(8)]
    await churn(client, buyers, event.id, event.seat_ids, random.Random(11))

    response = await client.get(f"/api/admin/events/{event.id}/report", headers=admin)

    assert response.status_code == 200, response.text
    report = response.json()
    sections, categories, total = await _oracle(engine, store, event.id)
    assert _counts(report["totals"]) == total
    assert {s["name"]: _counts(s) for s in report["sections"]} == sections
    assert {c["id"]: _counts(c) for c in report["price_categories"]} == categories
    assert sorted(c["name"] for c in report["price_categories"]) == ["Standard", "VIP"]
    # The churn left seats in every state.
    assert total["sold"] >= 4
    assert total["reserved"] > 0
    assert total["held"] > 0
    assert report["version"] == int(await redis.get(keys.seat_version(event.id)))
    _, live_count, live = await store.live_holds(event.id, 1000)
    holds = report["holds"]
    assert holds["live"] == live_count == len(live)
    assert holds["seats"] == sum(len(h.seats) for h in live) == total["held"]
    assert sum(b["holds"] for b in holds["by_age"]) == live_count
    assert holds["by_age"][0] == {
        "label": "<1 min",
        "from_seconds": 0,
        "to_seconds": 60,
        "holds": live_count,
        "seats": total["held"],
    }
    # The default hold lasts ten minutes: none runs out within a minute.
    assert holds["expiring_soon"] == {"within_seconds": 60, "holds": 0, "seats": 0}
    owners: Counter[str] = Counter()
    for h in live:
        owners[str(h.owner_id)] += len(h.seats)
    assert {t["owner_id"]: t["seats"] for t in report["top_holders"]} == dict(owners)


async def test_top_holders_ages_and_holds_expiring_soon(
    client: Client,
    make_user: UserFactory,
    engine: AsyncEngine,
    store: HoldStore,
    redis: Redis,
    sessions: async_sessionmaker[Any],
) -> None:
    event = await create_event(engine, rows=8, seats_per_row=10)
    admin = await make_user(Role.ADMIN)
    seats = iter(event.seat_ids)
    short = HoldPolicy(ttl_ms=30_000, max_extensions=0, max_lifetime_ms=30_000, seat_cap=40)
    long = HoldPolicy(ttl_ms=600_000, max_extensions=0, max_lifetime_ms=600_000, seat_cap=40)
    snapshot = taken_snapshot(sessions)

    async def hold(owner: uuid.UUID, size: int, policy: HoldPolicy) -> str:
        placed = await store.hold(
            event.id, owner, [next(seats) for _ in range(size)], policy, snapshot
        )
        return placed.id

    # Owner n holds n + 1 seats in one long hold; the biggest holder splits 12 seats in
    # three holds, two of which run out within the minute.
    owners = [uuid.uuid4() for _ in range(12)]
    for n, owner in enumerate(owners[:11]):
        await hold(owner, n + 1, long)
    biggest = owners[11]
    soon = [await hold(biggest, 4, short), await hold(biggest, 4, short)]
    old = await hold(biggest, 4, long)
    # Made to look older than they are: the report counts age from `created`.
    created = int(await hash_field(redis, keys.hold(event.id, old), "created") or 0)
    for hold_id, minutes in ((old, 7), (soon[0], 2)):
        aged = str(created - minutes * 60_000)
        await redis.hset(keys.hold(event.id, hold_id), "created", aged)  # type: ignore[misc]

    response = await client.get(f"/api/admin/events/{event.id}/report", headers=admin)

    assert response.status_code == 200, response.text
    report = response.json()
    top = report["top_holders"]
    assert len(top) == 10
    assert top[0] == {"owner_id": str(biggest), "holds": 3, "seats": 12}
    assert [t["seats"] for t in top[1:]] == list(range(11, 2, -1))
    assert [t["owner_id"] for t in top[1:]] == [str(o) for o in owners[10:1:-1]]
    holds = report["holds"]
    assert (holds["live"], holds["seats"]) == (14, sum(range(1, 12)) + 12)
    assert holds["expiring_soon"] == {"within_seconds": 60, "holds": 2, "seats": 8}
    assert [(b["label"], b["holds"], b["seats"]) for b in holds["by_age"]] == [
        ("<1 min", 12, sum(range(1, 12)) + 4),
        ("1-5 min", 1, 4),
        ("5-10 min", 1, 4),
        (">10 min", 0, 0),
    ]
    assert report["totals"]["held"] == holds["seats"]


async def test_only_admins_get_the_report_of_an_event_that_exists(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer, organizer, admin = (
        await make_user(),
        await make_user(Role.ORGANIZER),
        await make_user(Role.ADMIN),
    )
    path = f"/api/admin/events/{event.id}/report"

    assert_problem(await client.get(path, headers=buyer), 403)
    assert_problem(await client.get(path, headers=organizer), 403)
    assert_problem(await client.get(path), 401)
    unknown = await client.get(f"/api/admin/events/{uuid.uuid4()}/report", headers=admin)
    assert_problem(unknown, 404)


async def test_redis_down_answers_503_with_retry_after(
    client_with: ClientWith, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    admin = await make_user(Role.ADMIN)

    async with client_with(redis_url=f"redis://127.0.0.1:{free_port()}/0") as down:
        response = await down.get(f"/api/admin/events/{event.id}/report", headers=admin)

    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
