"""Accounts for load: minted straight into PostgreSQL with tokens signed here (for servers
whose JWT secret the caller knows), or signed up through the API (any deployment)."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.auth.tokens import Principal, issue_access_token
from seatlock.models import Role, User
from seatlock.settings import Settings


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
                {
                    "id": p.id,
                    "email": p.email,
                    "password_hash": "-",
                    "full_name": "Bench",
                    "role": role,
                }
                for p in people
            ],
        )
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
