"""The migrations on a database of their own: from nothing to head, back to nothing, again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Enum, inspect, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from seatlock import migrate
from seatlock.models import Base
from seatlock.settings import Settings

CURRENT = text("SELECT version_num FROM alembic_version")
TYPES = text(
    "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
    "WHERE n.nspname = 'public' AND t.typtype = 'e'"
)


@pytest.fixture
async def fresh_database(settings: Settings, engine: AsyncEngine) -> AsyncIterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards."""
    name = f"seatlock_migrations_{uuid.uuid4().hex[:12]}"
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(settings.database_url).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _schema(url: str) -> tuple[set[str], set[str], list[Any]]:
    """Tables, enum types and differences from the models, read on a fresh connection."""

    def read(connection: Connection) -> tuple[set[str], list[Any]]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return set(inspect(connection).get_table_names()), compare_metadata(context, Base.metadata)

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            tables, differences = await conn.run_sync(read)
            types = set((await conn.scalars(TYPES)).all())
    finally:
        await engine.dispose()
    return tables, types, differences


async def _current(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            revision: str | None = await conn.scalar(
                text("SELECT version_num FROM alembic_version")
            )
    finally:
        await engine.dispose()
    return revision


def _model_types() -> set[str]:
    return {
        str(column.type.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, Enum)
    }


async def _upgrade(url: str, revision: str = "head") -> None:
    # Alembic runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(migrate.upgrade, url, revision)


async def _downgrade(url: str, revision: str) -> None:
    await asyncio.to_thread(migrate.downgrade, url, revision)


async def test_upgrade_on_a_fresh_database_creates_exactly_the_models(
    fresh_database: str,
) -> None:
    await _upgrade(fresh_database)
    tables, types, differences = await _schema(fresh_database)
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert types == _model_types()
    assert differences == []
    assert await _current(fresh_database) == migrate.head_revision()


async def test_upgrade_twice_changes_nothing(fresh_database: str) -> None:
    await _upgrade(fresh_database)
    await _upgrade(fresh_database)
    assert (await _schema(fresh_database))[2] == []
    assert await _current(fresh_database) == migrate.head_revision()


async def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(
    fresh_database: str,
) -> None:
    await _upgrade(fresh_database)
    await _downgrade(fresh_database, "base")
    tables, types, _ = await _schema(fresh_database)
    assert tables == {"alembic_version"}
    assert types == set()
    assert await _current(fresh_database) is None
    await _upgrade(fresh_database)
    tables, _, differences = await _schema(fresh_database)
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert differences == []


async def test_every_revision_steps_down_and_up_again(fresh_database: str) -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config(fresh_database))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions, "no migrations found"
    for revision in revisions:
        await _upgrade(fresh_database, revision)
        await _downgrade(fresh_database, "-1")
        await _upgrade(fresh_database, revision)
        assert await _current(fresh_database) == revision
    assert (await _schema(fresh_database))[2] == []
