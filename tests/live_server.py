"""The real HTTP stack for tests: the app served by uvicorn, in worker processes or in the
test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from litestar import Litestar

from seatlock.app import create_app
from seatlock.settings import Settings
from seatlock.testing.servers import Backends, uvicorn_server


@contextmanager
def live_server(
    settings: Settings, workers: int = 2, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """The app served by uvicorn worker processes on the test servers (settings of theirs
    besides the servers' in `extra_env`)."""
    backends = Backends(settings.database_url, settings.redis_url, settings.jwt_secret, owned=False)
    with uvicorn_server("seatlock.app:create_app", backends, workers, extra_env) as base_url:
        yield base_url


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the service served by uvicorn on a free port, with these settings."""
    async with serving_app(create_app(settings)) as client:
        yield client


@contextlib.asynccontextmanager
async def serving_app(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` served by uvicorn on a free port, in the test's event loop."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await task
