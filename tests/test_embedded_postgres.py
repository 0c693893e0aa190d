"""The embedded PostgreSQL when its state directory was deleted but its cluster, kept
outside it, was not: the cluster's password went with the directory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from seatlock.embedded.postgres import EmbeddedPostgres


async def test_a_cluster_whose_password_is_gone_is_made_anew(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = EmbeddedPostgres(state)
    try:
        first.start()  # and left running, as after a crash
        first.password_file.unlink()

        url = EmbeddedPostgres(state).start()
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            signed_in_as = await conn.scalar(text("SELECT current_user"))
        await engine.dispose()
    finally:
        EmbeddedPostgres(state).destroy()

    assert signed_in_as == "seatlock"
