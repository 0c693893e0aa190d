"""The service on a real socket (uvicorn, in the test's event loop), for the stream of
changes: an ASGI test client waits for a whole answer, which a stream never ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from seatlock.settings import Settings
from tests.live_server import serving

# Long enough for a loaded two-core machine; a test waits this long at most for an event
# it expects, never for time to pass.
PATIENCE_SECONDS = 15.0


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings) as client:
        yield client


@dataclass
class SseEvent:
    event: str
    id: str | None
    data: Any


@dataclass
class StreamReader:
    """Reads one SSE stream in the background into `events`."""

    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    status: int | None = None
    headers: httpx.Headers | None = None

    async def read(self, response: httpx.Response) -> None:
        self.status, self.headers = response.status_code, response.headers
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            elif "data" in fields:
                data = json.loads(fields["data"])
                self.events.append(SseEvent(fields.get("event", "message"), fields.get("id"), data))
                fields = {}
            else:
                fields = {}

    async def until(self, check: Callable[[list[SseEvent]], bool], what: str) -> list[SseEvent]:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while not check(self.events):
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.events}"
            await asyncio.sleep(0.02)
        return self.events

    def changes(self) -> list[dict[str, Any]]:
        return [c for e in self.events if e.event == "changes" for c in e.data["changes"]]


@contextlib.asynccontextmanager
async def streaming(
    client: httpx.AsyncClient, event_id: uuid.UUID, headers: dict[str, str] | None = None
) -> AsyncIterator[StreamReader]:
    """A stream of the event's changes, read until the block ends."""
    reader = StreamReader()
    opened = asyncio.Event()

    async def run() -> None:
        path = f"/api/events/{event_id}/availability/stream"
        async with client.stream("GET", path, headers=headers or {}) as response:
            opened.set()
            await reader.read(response)

    task = asyncio.create_task(run())
    await asyncio.wait(
        {task, asyncio.ensure_future(opened.wait())},
        timeout=PATIENCE_SECONDS,
        return_when=asyncio.FIRST_COMPLETED,
    )
    if task.done():
        task.result()
    # The first bytes (a comment and the retry time) say the subscription is in place.
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not reader.comments and not task.done():
        assert time.monotonic() < deadline, "the stream never started"
        await asyncio.sleep(0.01)
    try:
        yield reader
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await task
