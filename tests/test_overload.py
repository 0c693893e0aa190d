"""Overload and collisions in the database answer 503 (retry), not 500."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from seatlock import db
from seatlock.problems import problem_details_plugin
from seatlock.settings import Settings
from tests.clients import assert_problem


@get("/busy")
async def busy() -> None:
    raise PoolTimeout("QueuePool limit of size 20 overflow 20 reached")


async def test_an_exhausted_pool_answers_503_with_retry_after() -> None:
    app = Litestar([busy], plugins=[problem_details_plugin()])
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/busy")

    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert "QueuePool" not in response.text


async def _run(database_url: str, sql: str) -> None:
    # An engine of the handler's own: the app runs on another event loop than the test.
    engine = db.create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def test_a_deadlock_victim_answers_503_and_a_real_database_error_500(
    settings: Settings,
) -> None:
    @get("/deadlock")
    async def deadlock() -> None:
        # The error PostgreSQL raises for a deadlock victim, raised for real.
        await _run(
            settings.database_url, "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$"
        )

    @get("/broken")
    async def broken() -> None:
        await _run(settings.database_url, "SELECT * FROM no_such_table")

    app = Litestar([deadlock, broken], plugins=[problem_details_plugin()], logging_config=None)
    async with AsyncTestClient(app=app) as client:
        retry = await client.get("/deadlock")
        fault = await client.get("/broken")

    assert retry.status_code == 503
    assert retry.headers["retry-after"] == "1"
    assert fault.status_code == 500
    assert "no_such_table" not in fault.text
