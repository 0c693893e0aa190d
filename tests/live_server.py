"""The real HTTP stack for tests: uvicorn worker processes serving the app."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.embedded import free_port
from seatlock.models import Role, User
from seatlock.settings import Settings
from seatlock.tokens import Principal, issue_access_token


@contextmanager
def live_server(settings: Settings, workers: int = 2) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SEATLOCK_JWT_SECRET": settings.jwt_secret,
        "SEATLOCK_ENV": "test",
    }
    command = [
        sys.executable, "-m", "uvicorn", "seatlock.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base_url, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_serving(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("uvicorn did not start serving")


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
