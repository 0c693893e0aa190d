"""Test servers and clients. The suite starts throwaway embedded PostgreSQL and Valkey
servers, unless TEST_DATABASE_URL / TEST_REDIS_URL point it at existing ones."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seatlock import db, migrate
from seatlock.app import create_app
from seatlock.embedded.postgres import EmbeddedPostgres
from seatlock.embedded.valkey import EmbeddedValkey, create_cluster
from seatlock.holds.scripts import register_scripts
from seatlock.holds.store import HoldStore
from seatlock.models import Base, Role
from seatlock.ops.request_log import configure_logging
from seatlock.settings import Settings
from tests.clients import PASSWORD, TEST_SECRET, Client, ClientWith, UserFactory


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="seatlock-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(state_dir: Path) -> Iterator[str]:
    if url := os.environ.get("TEST_DATABASE_URL"):
        migrate.upgrade(url)
        yield url
        return
    server = EmbeddedPostgres(state_dir / "pg")
    url = server.start()
    migrate.upgrade(url)
    yield url
    server.destroy()


@pytest.fixture(scope="session")
def valkey(state_dir: Path) -> Iterator[EmbeddedValkey | None]:
    if os.environ.get("TEST_REDIS_URL"):
        yield None
        return
    server = EmbeddedValkey(state_dir / "valkey")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(valkey: EmbeddedValkey | None) -> str:
    return os.environ.get("TEST_REDIS_URL") or (valkey.url if valkey else "")


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, state_dir: Path) -> Settings:
    return Settings(
        env="test",
        data_dir=str(state_dir),
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=TEST_SECRET,
        # Tests run the expiry sweep themselves, when they mean to.
        expiry_interval_seconds=3600,
        # This process starts apps test after test: each would freeze the one before.
        gc_freeze=False,
        # Every test client comes from one address; the rate limits' own tests set them.
        rate_limit_holds_per_account="",
        rate_limit_holds_per_address="",
        rate_limit_registrations_per_address="",
        rate_limit_payments_per_account="",
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(settings.database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def frozen_valkey(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    """A Valkey of the test's own, for the test to freeze (SIGSTOP); thawed and stopped
    after it."""
    server = EmbeddedValkey(tmp_path / "valkey")
    server.start()
    yield server
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture
def store(redis: Redis) -> HoldStore:
    """The hold layer on the test loop (the app's own clients live on the app's loop)."""
    return HoldStore(redis, register_scripts(redis))


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return db.session_factory(engine)


@pytest.fixture(autouse=True)
async def clean_state(engine: AsyncEngine, redis: Redis) -> None:
    """Every test starts from empty tables and an empty Redis."""
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    await redis.flushdb()


# Building the app takes a quarter of a second (Litestar makes a model of every route's
# signature), most of a simple test's set-up: each process keeps the apps it built, by
# settings, and hands an idle one to the next client. The client starts it again: its
# lifespan creates every resource, cache and background loop of `app.state` anew. Two
# clients open at once (a test's two workers) get an app each; an app whose test failed,
# or left requests counted for load shedding, is not used again.
_idle_apps: defaultdict[Settings, list[Litestar]] = defaultdict(list)


@pytest.fixture
def client_with(settings: Settings) -> ClientWith:
    """Opens clients of the app with some settings changed (the one way tests change them)."""

    @asynccontextmanager
    async def open_client(**changes: Any) -> AsyncIterator[Client]:
        changed = msgspec.structs.replace(settings, **changes)
        idle = _idle_apps[changed]
        app = idle.pop() if idle else create_app(changed)
        # Another app may have set the process's logging up since this one was built.
        configure_logging(changed.log_format)
        async with AsyncTestClient(app=app) as client:
            yield client
        if app.state.backlog.in_hand == 0:
            idle.append(app)

    return open_client


@pytest.fixture
async def client(client_with: ClientWith) -> AsyncIterator[Client]:
    async with client_with() as client:
        yield client


@pytest.fixture
def make_user(client: Client, engine: AsyncEngine) -> UserFactory:
    """Registers an account through the API, gives it a role, returns auth headers."""
    counter = iter(range(1_000_000))

    async def make(role: Role = Role.USER, email: str | None = None) -> dict[str, str]:
        email = email or f"user{next(counter)}-{role.value.lower()}@example.test"
        response = await client.post(
            "/api/auth/register",
            json={"email": email, "password": PASSWORD, "full_name": "Test User"},
        )
        assert response.status_code == 201, response.text
        if role is not Role.USER:
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE users SET role = :role WHERE email = :email"),
                    {"role": role.value, "email": email},
                )
            response = await client.post(
                "/api/auth/login", json={"email": email, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    return make


@pytest.fixture(scope="session")
def cluster_url(state_dir: Path) -> Iterator[str]:
    """A real three-node Valkey cluster, started the first time a test asks for it."""
    nodes = [EmbeddedValkey(state_dir / f"cluster-{i}", cluster=True) for i in range(3)]
    for node in nodes:
        node.start()
    try:
        create_cluster([node.port for node in nodes])
        yield nodes[0].url
    finally:
        for node in nodes:
            node.stop()
