"""The real HTTP stack for tests: uvicorn worker processes serving the app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.servers import Backends, uvicorn_server
from seatlock.models import Role, User
from seatlock.settings import Settings
from seatlock.tokens import Principal, issue_access_token


@contextmanager
def live_server(settings: Settings, workers: int = 2) -> Iterator[str]:
    """The app served by uvicorn worker processes on the test servers."""
    backends = Backends(settings.database_url, settings.redis_url, settings.jwt_secret, owned=False)
    with uvicorn_server("seatlock.app:create_app", backends, workers) as base_url:
        yield base_url


async def create_buyers(
    engine: AsyncEngine, settings: Settings, count: int
) -> list[dict[str, str]]:
    """Buyers written straight into PostgreSQL (hashing passwords would only slow the test)."""
    ids = [uuid.uuid4() for _ in range(count)]
    async with engine.begin() as conn:
        await conn.execute(
            insert(User),
            [
                {
                    "id": i,
                    "email": f"buyer-{i}@example.test",
                    "password_hash": "-",
                    "full_name": "B",
                    "role": Role.USER,
                }
                for i in ids
            ],
        )
    return [
        {
            "Authorization": "Bearer "
            + issue_access_token(settings, Principal(i, Role.USER, f"buyer-{i}@example.test"))
        }
        for i in ids
    ]
