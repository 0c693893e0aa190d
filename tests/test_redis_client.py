"""The service's Redis client (seatlock.redis_client), against a real Valkey."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

import pytest
import redis.utils
from redis.asyncio import Redis

from seatlock.redis_client import connect_redis
from seatlock.settings import Settings

CONNECTIONS = 5


async def test_new_connections_do_not_read_the_package_metadata(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    read_version = cast(Callable[[], str], redis.utils.get_lib_version)

    def counted() -> str:
        reads.append("version")
        return read_version()

    monkeypatch.setattr(redis.utils, "get_lib_version", counted)
    client = connect_redis(settings)
    assert isinstance(client, Redis)
    made = len(reads)
    try:
        # Each blocking pop keeps a connection of its own for a moment.
        empty = f"test:{uuid.uuid4()}"
        pops = [client.blpop([empty], timeout=0.2) for _ in range(CONNECTIONS)]
        await asyncio.gather(*cast(list[Awaitable[object]], pops))
        opened = len(client.connection_pool._available_connections)
        name = await client.client_info()
    finally:
        await client.aclose()

    assert made == 1
    assert opened == CONNECTIONS
    assert len(reads) == made
    assert name["lib-name"] == "redis-py"
    assert name["lib-ver"] == read_version()
