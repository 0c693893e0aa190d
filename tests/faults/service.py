"""The service as the fault tests run it: uvicorn worker processes (seatlock.testing.servers)
that a test can SIGKILL and start again, requests pinned between two steps by row locks
that another PostgreSQL session holds, and clients that retry what asks to be retried."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.testing.servers import Backends, uvicorn_server

APP = "seatlock.app:create_app"
# Long enough for a loaded two-core machine; a test waits this long at most for a state
# it expects (a request pinned, a server gone), never for time to pass.
PATIENCE_SECONDS = 30.0
OTHER_BACKENDS = (
    "datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until `check()` holds; fail naming `what` after PATIENCE_SECONDS."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


async def lock_waiters(engine: AsyncEngine) -> int:
    """How many PostgreSQL sessions wait on a lock right now."""
    async with engine.connect() as conn:
        query = f"SELECT count(*) FROM pg_stat_activity WHERE {OTHER_BACKENDS} "
        return int(await conn.scalar(text(query + "AND wait_event_type = 'Lock'")) or 0)


async def busy_backends(engine: AsyncEngine) -> int:
    """Sessions of others that are running a statement or sit in a transaction."""
    async with engine.connect() as conn:
        query = f"SELECT count(*) FROM pg_stat_activity WHERE {OTHER_BACKENDS} "
        return int(await conn.scalar(text(query + "AND state <> 'idle'")) or 0)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _serving(port: int) -> list[int]:
    """The uvicorn process this test process started on `port`, and its workers."""
    tree = _children()
    port_argument = f"--port\0{port}\0".encode()
    masters = [
        pid
        for pid in tree.get(os.getpid(), [])
        if port_argument in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    found: list[int] = []
    while masters:
        pid = masters.pop()
        found.append(pid)
        masters.extend(tree.get(pid, []))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Service:
    """The service on `backends`, in uvicorn worker processes, killable and restartable."""

    backends: Backends
    env: dict[str, str]
    workers: int = 2
    base_url: str = ""
    _servers: ExitStack = field(default_factory=ExitStack)

    def start(self) -> str:
        self._servers.close()
        self.base_url = self._servers.enter_context(
            uvicorn_server(APP, self.backends, self.workers, self.env)
        )
        return self.base_url

    def kill(self) -> None:
        """SIGKILL the service, workers and all: nothing of it runs any more afterwards."""
        port = int(self.base_url.rsplit(":", 1)[1])
        processes = _serving(port)
        assert processes, f"no server process on port {port}"
        for pid in processes:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + PATIENCE_SECONDS
        while any(_alive(pid) for pid in processes):
            assert time.monotonic() < deadline, "the killed service did not go"
            time.sleep(0.02)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=PATIENCE_SECONDS)

    def close(self) -> None:
        self._servers.close()


@contextmanager
def running(backends: Backends, env: dict[str, str], workers: int = 2) -> Iterator[Service]:
    service = Service(backends, env, workers)
    try:
        service.start()
        yield service
    finally:
        service.close()
