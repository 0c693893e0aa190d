"""PostgreSQL transactions spent by a phase: `xact_commit` and `xact_rollback` of the
database in pg_stat_database, read before and after."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Pending statistics of idle backends reach pg_stat_database within this many seconds.
STATS_IDLE_FLUSH_SECONDS = 11


@dataclass(frozen=True)
class Transactions:
    commits: int
    rollbacks: int

    @property
    def total(self) -> int:
        return self.commits + self.rollbacks

    def __sub__(self, other: Transactions) -> Transactions:
        return Transactions(self.commits - other.commits, self.rollbacks - other.rollbacks)


async def transactions(engine: AsyncEngine) -> Transactions:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT xact_commit, xact_rollback FROM pg_stat_database "
                    "WHERE datname = current_database()"
                )
            )
        ).one()
    return Transactions(int(row.xact_commit), int(row.xact_rollback))


async def flush_statistics(engine: AsyncEngine, owned: bool) -> None:
    """Make every backend's pending counts visible in pg_stat_database: backends flush
    them on exit, so on servers of our own we end them (the pools reconnect)."""
    if not owned:
        await asyncio.sleep(STATS_IDLE_FLUSH_SECONDS)
        return
    async with engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
        )
    await asyncio.sleep(0.5)
