"""The PostgreSQL engine and its session factory."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection


def create_engine(url: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping per checkout: asyncpg's costs three round trips (BEGIN, an empty query,
        # ROLLBACK) before every transaction. `_replace_closed` finds the connections that a
        # restart or a terminated backend broke without any.
        pool_pre_ping=False,
        pool_timeout=10,
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_closed)
    return engine


def _replace_closed(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    """A connection whose server went away (a restart, `pg_terminate_backend`, an idle
    timeout) was told so while it sat in the pool: PostgreSQL sends its farewell and closes
    the socket, and asyncpg, reading every idle socket, marks the connection closed. Such a
    connection is swapped for a new one here, before any statement of the request is sent,
    so the request does not fail on it. Raising DisconnectionError makes the pool drop it
    and check out a fresh one (SQLAlchemy's documented pessimistic-disconnect hook)."""
    driver = proxy.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("PostgreSQL closed this pooled connection while it was idle")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
