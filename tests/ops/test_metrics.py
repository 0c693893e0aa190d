"""GET /metrics: guarded, exact about what a scripted sale did, one total over two worker
processes, and free of unbounded label values."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import db, keys
from seatlock.bookings.expiry import expire_due_bookings
from seatlock.holds.store import HoldStore
from seatlock.models import Role
from seatlock.ops import metrics
from seatlock.ops.metrics import MULTIPROCESS_ENV, prepare_multiprocess_dir
from seatlock.settings import Settings
from seatlock.testing.servers import Backends, uvicorn_server
from tests.buying import book, booked, hold, pay
from tests.clients import Client, ClientWith, UserFactory, assert_problem
from tests.factories import create_event

METRICS_TOKEN = "metrics-token-for-the-tests-0123456789abcdef"
UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
# The per-event gauges name events on sale (capped), the one bounded id a label may carry.
PER_EVENT = {
    "seatlock_live_holds",
    "seatlock_held_seats",
    "seatlock_holds_expired_total",
    "seatlock_queue_waiting",
    "seatlock_queue_shopping",
    "seatlock_queue_admitted_total",
}
DASHBOARD = "deploy/grafana/seatlock-flash-sale.json"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(exposition: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


async def scrape(client: httpx.AsyncClient | Client, headers: dict[str, str]) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def changes(before: Samples, after: Samples) -> dict[tuple[str, tuple[str, ...]], float]:
    """What moved between two scrapes, with the labels' values (not names) as the key."""
    moved = {}
    for key, new in after.items():
        if new != before.get(key, 0.0):
            moved[(key[0], tuple(v for _, v in key[1]))] = new - before.get(key, 0.0)
    return moved


async def test_metrics_are_for_admins_and_the_metrics_token(
    client_with: ClientWith, make_user: UserFactory
) -> None:
    user, admin = await make_user(), await make_user(Role.ADMIN)
    async with client_with(metrics_token=METRICS_TOKEN) as client:
        assert_problem(await client.get("/metrics"), 401)
        assert_problem(await client.get("/metrics", headers=user), 403)
        wrong = {"Authorization": f"Bearer {METRICS_TOKEN}x"}
        assert_problem(await client.get("/metrics", headers=wrong), 401)
        assert (await client.get("/metrics", headers=admin)).status_code == 200
        scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        assert (await client.get("/metrics", headers=scraper)).status_code == 200
        # The metrics token opens nothing else.
        assert_problem(await client.get("/api/admin/users", headers=scraper), 401)


async def test_counters_move_by_exactly_what_a_sale_did(
    client: Client,
    make_user: UserFactory,
    engine: AsyncEngine,
    redis: Redis,
    store: HoldStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = await make_user(Role.ADMIN)
    a, b, c, d = [await make_user() for _ in range(4)]
    event = await create_event(engine, rows=2, seats_per_row=10, max_seats_per_booking=4)
    narrow = await create_event(engine, rows=1, seats_per_row=2)
    seats = event.seat_ids
    before = await scrape(client, admin)

    held = await hold(client, a, event.id, seats[0:2])
    url = f"/api/events/{event.id}/holds"
    conflict = await client.post(url, json={"seat_ids": [str(seats[1])]}, headers=b)
    assert conflict.json()["reason"] == "held"
    over = {"seat_ids": [str(s) for s in seats[2:5]]}
    assert (await client.post(url, json=over, headers=a)).json()["reason"] == "limit"
    best = await client.post(url, json={"quantity": 2}, headers=b)
    assert best.status_code == 201, best.text
    narrow_url = f"/api/events/{narrow.id}/holds"
    none = await client.post(narrow_url, json={"quantity": 3}, headers=b)
    assert none.json()["reason"] == "unavailable"
    assert (await client.post(f"/api/holds/{held}/extend", headers=a)).status_code == 200
    assert (await client.delete(f"/api/holds/{best.json()['id']}", headers=b)).status_code == 204

    # A hold that ran out, freed by the sweep (the app's, or this one: either counts once).
    monkeypatch.setattr(metrics, "HOLD_GAUGES_SECONDS", 0.0)
    gone = await hold(client, b, event.id, [seats[5]])
    await redis.zadd(keys.event_holds(event.id), {gone: 1})
    await store.sweep_expired(event.id)

    key = str(uuid.uuid4())
    paid = await book(client, a, held, key)
    assert paid.status_code == 201, paid.text
    assert (await book(client, a, held, key)).headers["Idempotent-Replayed"] == "true"
    await pay(client, a, paid.json()["id"])
    sold = await client.post(url, json={"seat_ids": [str(seats[0])]}, headers=b)
    assert sold.json()["reason"] == "sold"

    cancelled = await booked(client, c, event.id, [seats[10]])
    assert (await client.delete(f"/api/bookings/{cancelled['id']}", headers=c)).status_code in (
        200,
        204,
    )
    overdue = await booked(client, d, event.id, [seats[11]])
    reserved = await client.post(url, json={"seat_ids": [str(seats[11])]}, headers=b)
    assert reserved.json()["reason"] == "reserved"
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE bookings SET payment_deadline = now() - interval '1 s' WHERE id = :id"),
            {"id": overdue["id"]},
        )
    async with db.session_factory(engine)() as session:
        assert await expire_due_bookings(session, store) == 1

    after = await scrape(client, admin)
    moved = changes(before, after)
    expected = {
        ("seatlock_holds_created_total", ("chosen",)): 4,
        ("seatlock_holds_created_total", ("best_available",)): 1,
        ("seatlock_holds_refused_total", ("held",)): 1,
        ("seatlock_holds_refused_total", ("limit",)): 1,
        ("seatlock_holds_refused_total", ("unavailable",)): 1,
        ("seatlock_holds_refused_total", ("sold",)): 1,
        ("seatlock_holds_refused_total", ("reserved",)): 1,
        ("seatlock_holds_extended_total", ()): 1,
        ("seatlock_holds_released_total", ("owner",)): 1,
        ("seatlock_holds_expired_total", (str(event.id),)): 1,
        ("seatlock_holds_converted_total", ()): 3,
        ("seatlock_bookings_total", ("created",)): 3,
        ("seatlock_bookings_total", ("confirmed",)): 1,
        ("seatlock_bookings_total", ("cancelled",)): 1,
        ("seatlock_bookings_total", ("expired",)): 1,
        ("seatlock_idempotent_replays_total", ("/api/bookings",)): 1,
    }
    assert {k: v for k, v in moved.items() if k[0] in {n for n, _ in expected}} == expected
    assert (
        value(after, "seatlock_payments_total", outcome="succeeded")
        - value(before, "seatlock_payments_total", outcome="succeeded")
        == 1
    )
    route = "/api/events/{event_id}/holds"
    holds_answered = value(after, "seatlock_http_requests_total", route=route, method="POST")
    assert (
        holds_answered - value(before, "seatlock_http_requests_total", route=route, method="POST")
        == 10
    )
    hold_calls = value(after, "seatlock_redis_script_duration_seconds_count", script="hold")
    assert hold_calls > value(before, "seatlock_redis_script_duration_seconds_count", script="hold")
    assert value(after, "seatlock_live_holds", event=str(event.id)) >= 0
    assert value(after, "seatlock_db_pool_capacity") > 0
    for (name, labels), _ in after.items():
        assert name.startswith("seatlock_"), name
        for label, label_value in labels:
            if name in PER_EVENT and label == "event":
                continue
            assert not UUID.search(label_value), (name, label, label_value)


def _served_by(directory: Path) -> dict[str, float]:
    """HTTP requests counted in each worker's own file."""
    served: dict[str, float] = defaultdict(float)
    for path in directory.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
            for sample in family.samples:
                if sample.name == "seatlock_http_requests_total":
                    served[path.name] += sample.value
    return served


def _workers_that_served(directory: Path) -> int:
    return len([n for n in _served_by(directory).values() if n > 0])


async def test_one_scrape_counts_the_requests_of_every_worker(
    settings: Settings, tmp_path: Path
) -> None:
    backends = Backends(settings.database_url, settings.redis_url, settings.jwt_secret, False)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "SEATLOCK_METRICS_TOKEN": METRICS_TOKEN}
    scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    with uvicorn_server("seatlock.app:create_app", backends, 2, env) as base_url:
        # A new connection per request, so that both workers take some.
        async with httpx.AsyncClient(
            base_url=base_url, limits=httpx.Limits(max_keepalive_connections=0)
        ) as client:
            before = await scrape(client, scraper)
            sent = 0
            # The server answers once one worker has started; the other may still be
            # starting (its start-up ends with a full collection, seatlock.heap).
            for _ in range(50):
                answers = await asyncio.gather(*(client.get("/health/live") for _ in range(20)))
                assert all(a.status_code == 200 for a in answers)
                sent += len(answers)
                if _workers_that_served(tmp_path) >= 2:
                    break
                await asyncio.sleep(0.1)
            assert _workers_that_served(tmp_path) >= 2
            after = await scrape(client, scraper)
    labels = {"route": "/health/live", "method": "GET", "status": "200"}
    total = value(after, "seatlock_http_requests_total", **labels)
    assert total - value(before, "seatlock_http_requests_total", **labels) == sent


async def test_the_grafana_dashboard_reads_metrics_the_service_exports(
    client: Client, make_user: UserFactory
) -> None:
    dashboard = json.loads((Path(__file__).parents[2] / DASHBOARD).read_text())
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    response = await client.get("/metrics", headers=await make_user(Role.ADMIN))
    exported = set()
    for family in text_string_to_metric_families(response.text):
        exported |= {family.name} | {sample.name for sample in family.samples}
    exported |= {f"{name}_total" for name in exported} | {f"{name}_bucket" for name in exported}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            for name in re.findall(r"seatlock_\w+", target["expr"]):
                assert name in exported, (panel["title"], name)


def test_serve_sets_up_an_empty_directory_for_several_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)
    prepare_multiprocess_dir(Settings(workers=1, data_dir=str(tmp_path)))
    assert MULTIPROCESS_ENV not in os.environ
    left = tmp_path / "metrics" / "counter_123.db"
    left.parent.mkdir()
    left.write_bytes(b"from an earlier run")
    prepare_multiprocess_dir(Settings(workers=2, data_dir=str(tmp_path)))
    assert os.environ[MULTIPROCESS_ENV] == str(tmp_path / "metrics")
    assert list(left.parent.iterdir()) == []
