"""Setting up a flash sale: accounts for the organizer and the buyers, and an event of S
seats in several sections, published and on sale."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.buyers import SeatInfo
from seatlock.models import Role, User
from seatlock.settings import Settings
from seatlock.tokens import Principal, issue_access_token

SEATS_PER_ROW = 25
MAX_SECTIONS = 5
HOT_SECTION = "A"
PRICE_MINOR = 4500


def seat_map(seats: int) -> dict[str, Any]:
    """Exactly `seats` seats over up to five sections (A is the hot one), rows of 25."""
    sections = max(1, min(MAX_SECTIONS, seats // 10))
    described = []
    for index in range(sections):
        size = seats // sections + (1 if index < seats % sections else 0)
        full_rows, rest = divmod(size, SEATS_PER_ROW)
        blocks = []
        if full_rows:
            blocks.append(
                {"rows": {"first": "1", "last": str(full_rows)},
                 "seats": {"first": 1, "last": SEATS_PER_ROW}, "category": "Standard"}
            )  # fmt: skip
        if rest:
            blocks.append(
                {"rows": [str(full_rows + 1)], "seats": {"first": 1, "last": rest},
                 "category": "Standard"}
            )  # fmt: skip
        described.append({"name": chr(ord("A") + index), "blocks": blocks})
    return {"sections": described}


def event_body(seats: int, title: str) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "title": title,
        "venue": "Benchmark Arena",
        "starts_at": (now + timedelta(days=30)).isoformat(),
        "ends_at": (now + timedelta(days=30, hours=3)).isoformat(),
        "sale_starts_at": (now - timedelta(hours=1)).isoformat(),
        "sale_ends_at": (now + timedelta(days=29)).isoformat(),
        "price_categories": [{"name": "Standard", "price_minor": PRICE_MINOR, "currency": "EUR"}],
        "seat_map": seat_map(seats),
    }


async def create_event(
    client: httpx.AsyncClient, organizer: dict[str, str], seats: int, title: str
) -> tuple[str, list[SeatInfo]]:
    response = await client.post(
        "/api/events", json=event_body(seats, title), headers=organizer, timeout=120
    )
    response.raise_for_status()
    created = response.json()
    published = await client.patch(
        f"/api/events/{created['id']}", json={"status": "on_sale"}, headers=organizer
    )
    published.raise_for_status()
    return created["id"], [
        SeatInfo(str(s["id"]), s["section"], s["row"], int(s["number"])) for s in created["seats"]
    ]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def mint_accounts(
    engine: AsyncEngine, jwt_secret: str, count: int, role: Role = Role.USER
) -> list[dict[str, str]]:
    """Accounts written straight into PostgreSQL with tokens signed here: only for servers
    the benchmark started, whose JWT secret it knows. Saves a password hash per buyer."""
    settings = Settings(jwt_secret=jwt_secret, access_token_minutes=240)
    run = secrets.token_hex(4)
    people = [
        Principal(uuid.uuid4(), role, f"{role.value.lower()}-{run}-{n}@bench.example")
        for n in range(count)
    ]
    async with engine.begin() as conn:
        await conn.execute(
            insert(User),
            [
                {"id": p.id, "email": p.email, "password_hash": "-", "full_name": "Bench",
                 "role": role}
                for p in people
            ],
        )  # fmt: skip
    return [_bearer(issue_access_token(settings, p)) for p in people]


async def register_accounts(
    client: httpx.AsyncClient, engine: AsyncEngine, count: int, role: Role = Role.USER
) -> list[dict[str, str]]:
    """Accounts signed up through the API (any deployment); a role other than USER is
    given in the database, then the account signs in again to carry it."""
    run = secrets.token_hex(4)
    password = secrets.token_urlsafe(16)
    gate = asyncio.Semaphore(16)

    async def one(n: int) -> dict[str, str]:
        email = f"{role.value.lower()}-{run}-{n}@bench.example"
        async with gate:
            response = await client.post(
                "/api/auth/register",
                json={"email": email, "password": password, "full_name": "Bench"},
            )
            response.raise_for_status()
            if role is Role.USER:
                return _bearer(response.json()["access_token"])
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE users SET role = CAST(:role AS user_role) WHERE email = :email"),
                    {"role": role.value, "email": email},
                )
            response = await client.post(
                "/api/auth/login", json={"email": email, "password": password}
            )
            response.raise_for_status()
            return _bearer(response.json()["access_token"])

    return list(await asyncio.gather(*(one(n) for n in range(count))))
