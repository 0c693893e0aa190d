"""Everything handlers can ask for, provided in one place.

Handlers name a dependency by parameter name and mark it with one of the aliases below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seatlock import db
from seatlock.access import provide_principal, provide_viewer
from seatlock.holds import HoldStore
from seatlock.redis_client import RedisClient
from seatlock.settings import Settings as SettingsType
from seatlock.tokens import Principal

Settings: TypeAlias = NamedDependency[SettingsType]
DbEngine: TypeAlias = NamedDependency[AsyncEngine]
DbSession: TypeAlias = NamedDependency[AsyncSession]
# Litestar cannot validate a union of two client classes, and need not: the app made it.
Redis: TypeAlias = NamedDependency[SkipValidation[RedisClient]]
Holds: TypeAlias = NamedDependency[HoldStore]
Caller: TypeAlias = NamedDependency[Principal]
Viewer: TypeAlias = NamedDependency[Principal | None]


def _state_value(name: str) -> Provide:
    def provide(state: State) -> Any:
        return getattr(state, name)

    return Provide(provide, sync_to_thread=False)


async def _db_session(state: State) -> AsyncIterator[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = state.sessions
    async for session in db.session_scope(factory):
        yield session


def providers() -> dict[str, Provide]:
    return {
        "settings": _state_value("settings"),
        "db_engine": _state_value("engine"),
        "redis": _state_value("redis"),
        "holds": _state_value("holds"),
        "db_session": Provide(_db_session),
        "principal": Provide(provide_principal, sync_to_thread=False),
        "viewer": Provide(provide_viewer, sync_to_thread=False),
    }
