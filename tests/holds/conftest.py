"""Fixtures of the hold layer's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fakeredis import FakeAsyncRedis as FakeRedis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from seatlock.holds.scripts import load_scripts, register_scripts
from seatlock.holds.store import HoldStore
from seatlock.ops.metrics import SCRIPT_PIPELINE_CALLS
from seatlock.redis_client import RedisClient
from seatlock.script_batches import ScriptBatches


@pytest.fixture(params=["valkey", "valkey-pipelined", "cluster", "fakeredis"])
async def any_store(request: pytest.FixtureRequest, redis: Redis) -> AsyncIterator[HoldStore]:
    """The same scripts on one server (called one by one, and through the service's
    pipelines: alone, or together where a test makes its calls at once), on a three-node
    cluster, and on fakeredis."""
    client: RedisClient
    if request.param.startswith("valkey"):
        client = redis
    elif request.param == "cluster":
        client = RedisCluster.from_url(
            request.getfixturevalue("cluster_url"), decode_responses=True
        )
        await client.flushall()
    else:
        client = FakeRedis(decode_responses=True)
    pipelined = request.param == "valkey-pipelined"
    batches = ScriptBatches(redis, SCRIPT_PIPELINE_CALLS.observe) if pipelined else None
    scripts = register_scripts(client, batches)
    await load_scripts(client, scripts)
    yield HoldStore(client, scripts)
    if batches is not None:
        await batches.aclose()
    if client is not redis:
        await client.aclose()
