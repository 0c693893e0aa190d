"""A request that finds no free database connection in time gets 503, not 500."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy.exc import TimeoutError as PoolTimeout

from seatlock.problems import problem_details_plugin


@get("/busy")
async def busy() -> None:
    raise PoolTimeout("QueuePool limit of size 20 overflow 20 reached")


async def test_an_exhausted_pool_answers_503_with_retry_after() -> None:
    app = Litestar([busy], plugins=[problem_details_plugin()])
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/busy")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert "QueuePool" not in response.text
