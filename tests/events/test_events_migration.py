from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import migrate
from seatlock.models import Base
from seatlock.settings import Settings

EVENT_TABLES = {"events", "price_categories", "seats"}
EVENT_TYPES = {"event_status", "seat_state"}


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _schema(engine: AsyncEngine) -> tuple[set[str], set[str]]:
    async with engine.connect() as conn:
        tables = await conn.run_sync(_tables)
        types = set((await conn.scalars(text("SELECT typname FROM pg_type"))).all())
    return tables, types


async def test_the_migrations_create_exactly_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_the_events_migration_is_reversible(settings: Settings, engine: AsyncEngine) -> None:
    # Pooled connections are dropped first and last: they cache the enum types' ids.
    await engine.dispose()
    try:
        # Alembic runs its own event loop, so it gets a thread of its own.
        await asyncio.to_thread(migrate.downgrade, settings.database_url, "0001")
        tables, types = await _schema(engine)
        assert not tables & EVENT_TABLES
        assert not types & EVENT_TYPES
    finally:
        await engine.dispose()
        await asyncio.to_thread(migrate.upgrade, settings.database_url)
    tables, types = await _schema(engine)
    assert tables >= EVENT_TABLES
    assert types >= EVENT_TYPES
    await engine.dispose()
