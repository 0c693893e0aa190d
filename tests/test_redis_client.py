"""The service's Redis client (seatlock.redis_client), against a real Valkey."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

import msgspec
import pytest
import redis.utils
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from seatlock.redis_client import PackedInC, connect_redis
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


async def test_commands_packed_in_c_are_the_bytes_redis_py_sends(settings: Settings) -> None:
    client = connect_redis(settings)
    assert isinstance(client, Redis)
    packed_in_c, in_python = PackedInC(), Connection()
    command = ("EVALSHA", "f" * 40, 2, "seatlock:{e}:held", b"k2", 60_000, 0.25, "é", "-1")
    try:
        assert client.connection_pool.connection_class is PackedInC
        assert b"".join(packed_in_c.pack_command(*command)) == b"".join(
            in_python.pack_command(*command)
        )
        assert packed_in_c.pack_command("CLIENT SETINFO", "LIB-NAME", "x") == [
            b"*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$8\r\nLIB-NAME\r\n$1\r\nx\r\n"
        ]
        # And Valkey understands them: a script call with keys and arguments of each kind.
        script = client.eval("return {KEYS[1], ARGV[1], ARGV[2]}", 1, "k", 7, 0.5)
        answer = await cast(Awaitable[list[str]], script)
        assert answer == ["k", "7", "0.5"]
    finally:
        await client.aclose()


def test_tls_and_unix_socket_addresses_keep_redis_pys_connections(settings: Settings) -> None:
    made = {
        scheme: connect_redis(msgspec.structs.replace(settings, redis_url=url))
        for scheme, url in (
            ("rediss", "rediss://127.0.0.1:6380/0"),
            ("unix", "unix:///tmp/valkey.sock"),
        )
    }

    classes = {
        scheme: client.connection_pool.connection_class
        for scheme, client in made.items()
        if isinstance(client, Redis)
    }

    assert classes == {"rediss": SSLConnection, "unix": UnixDomainSocketConnection}
