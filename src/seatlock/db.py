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
        # No ping per checkout: it cost a round trip before every transaction. A connection
        # that a PostgreSQL restart broke fails its first statement instead; SQLAlchemy then
        # invalidates every connection of the pool made before, so each process answers one
        # request 503 (a retry) per restart rather than paying a ping on every request.
        pool_pre_ping=False,
        pool_timeout=10,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
