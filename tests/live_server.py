"""The real HTTP stack for tests: uvicorn worker processes serving the app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from seatlock.settings import Settings
from seatlock.testing.servers import Backends, uvicorn_server


@contextmanager
def live_server(settings: Settings, workers: int = 2) -> Iterator[str]:
    """The app served by uvicorn worker processes on the test servers."""
    backends = Backends(settings.database_url, settings.redis_url, settings.jwt_secret, owned=False)
    with uvicorn_server("seatlock.app:create_app", backends, workers) as base_url:
        yield base_url
