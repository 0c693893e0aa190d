"""The PostgreSQL engine and its session factory."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # A checkout pings first, so that connections a PostgreSQL restart (or a terminated
        # backend) broke are replaced instead of failing requests. The hold path checks out
        # no connection and pays nothing for it.
        pool_pre_ping=True,
        pool_timeout=10,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
