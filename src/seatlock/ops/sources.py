"""Where the ops console reads holds from: a running service's admin API, or, while the
service is down, Redis itself through the hold store and its scripts (and PostgreSQL for
the seat layout a report needs)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol, TypeVar

import httpx
import msgspec
from sqlalchemy.exc import SQLAlchemyError

from seatlock import db
from seatlock.auth.tokens import Principal
from seatlock.availability.changes import ChangeLog
from seatlock.availability.layout import LayoutCache
from seatlock.availability.stream import ChangesOut
from seatlock.errors import DomainError
from seatlock.holds.on_sale import OnSaleCache
from seatlock.holds.placement import taken_snapshot
from seatlock.holds.routes import LiveHoldOut, live_holds_out
from seatlock.holds.scripts import register_scripts
from seatlock.holds.store import HoldStore
from seatlock.models import Role
from seatlock.ops.report import HoldReportOut, build_report, read_holds
from seatlock.paging import Page
from seatlock.redis_client import REDIS_DOWN, connect_redis
from seatlock.settings import Settings

T = TypeVar("T")

# The console reads the layout as an admin would: drafts included.
CONSOLE_VIEWER: Final = Principal(id=uuid.UUID(int=0), role=Role.ADMIN, email="console")
# How often the change log is read when following Redis directly.
FOLLOW_SECONDS: Final = 0.2


class ConsoleError(Exception):
    """Something the console reports in one line and exits 1 for."""


@dataclass
class ChangeTally:
    """Seat changes seen so far, by cause: how many changes and how many seats."""

    changes: Counter[str] = field(default_factory=Counter)
    seats: Counter[str] = field(default_factory=Counter)

    def add(self, cause: str, seats: int) -> None:
        self.changes[cause] += 1
        self.seats[cause] += seats

    def copy(self) -> ChangeTally:
        return ChangeTally(Counter(self.changes), Counter(self.seats))


class LiveHolds(NamedTuple):
    """The first live holds of an event, soonest to expire first, and how many there are."""

    total: int
    holds: list[LiveHoldOut]


class HoldSource(Protocol):
    async def report(self, event_id: uuid.UUID) -> HoldReportOut: ...

    async def holds(self, event_id: uuid.UUID, limit: int) -> LiveHolds: ...

    async def release(self, hold_id: str) -> None: ...

    async def follow(self, event_id: uuid.UUID, tally: ChangeTally) -> None:
        """Counts the event's seat changes into `tally` until cancelled."""

    async def aclose(self) -> None: ...


def _problem(response: httpx.Response) -> ConsoleError:
    try:
        body = response.json()
        detail = f"{body['title']}: {body['detail']}"
    except (ValueError, KeyError, TypeError):
        detail = response.text[:200] or response.reason_phrase
    if response.status_code == 401:
        detail += " (sign in again, or set SEATLOCK_ADMIN_TOKEN to a fresh admin token)"
    return ConsoleError(f"{response.status_code} {detail}")


async def sign_in(url: str, email: str, password: str) -> str:
    """An access token for the account, from POST /api/auth/login."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        try:
            response = await http.post(
                "/api/auth/login", json={"email": email, "password": password}
            )
        except httpx.HTTPError as exc:
            raise ConsoleError(f"cannot reach the service at {url}: {exc}") from exc
    if response.status_code != 200:
        raise _problem(response)
    token: str = response.json()["access_token"]
    return token


class ApiSource:
    """A running service's admin API, with an admin's access token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    async def _call(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise ConsoleError(f"cannot reach the service at {self.url}: {exc!r}") from exc
        if response.status_code >= 400:
            raise _problem(response)
        return response

    async def _get(self, path: str, answer: type[T], **options: Any) -> T:
        response = await self._call("GET", path, **options)
        return msgspec.json.decode(response.content, type=answer)

    async def report(self, event_id: uuid.UUID) -> HoldReportOut:
        return await self._get(f"/api/admin/events/{event_id}/report", HoldReportOut)

    async def holds(self, event_id: uuid.UUID, limit: int) -> LiveHolds:
        path = f"/api/admin/events/{event_id}/holds"
        page = await self._get(path, Page[LiveHoldOut], params={"limit": limit})
        return LiveHolds(page.total or 0, page.items)

    async def release(self, hold_id: str) -> None:
        await self._call("DELETE", f"/api/admin/holds/{hold_id}")

    async def follow(self, event_id: uuid.UUID, tally: ChangeTally) -> None:
        # The availability stream names each change's cause; a dropped connection picks up
        # where it left off (Last-Event-ID), so no change is counted twice.
        path = f"/api/events/{event_id}/availability/stream"
        seen: str | None = None
        while True:
            headers = {"Last-Event-ID": seen} if seen else {}
            try:
                async with self.http.stream(
                    "GET", path, headers=headers, timeout=httpx.Timeout(10, read=60)
                ) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("id:"):
                            seen = line[3:].strip()
                        elif line.startswith("data:") and '"changes"' in line:
                            frame = msgspec.json.decode(line[5:].strip(), type=ChangesOut)
                            for change in frame.changes:
                                tally.add(change.cause, len(change.seats))
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1)

    async def aclose(self) -> None:
        await self.http.aclose()


class RedisSource:
    """Redis itself, through the hold store and its scripts; PostgreSQL (when configured)
    for the layout a report needs and for rebuilding the reserved/sold cache."""

    def __init__(self, settings: Settings) -> None:
        self.redis = connect_redis(settings)
        self.store = HoldStore(self.redis, register_scripts(self.redis))
        self.log = ChangeLog(self.redis)
        self.engine = (
            db.create_engine(settings.database_url, pool_size=1) if settings.database_url else None
        )
        # One layout cache for the console's life: `watch` reads the layout once, not at
        # every refresh.
        self.sessions = None if self.engine is None else db.session_factory(self.engine)
        self.layouts = (
            None
            if self.sessions is None
            else LayoutCache(self.sessions, OnSaleCache(self.sessions))
        )

    async def report(self, event_id: uuid.UUID) -> HoldReportOut:
        if self.sessions is None or self.layouts is None:
            raise ConsoleError(
                "a report needs PostgreSQL for the seat layout: set DATABASE_URL (or --database)"
            )
        with _domain_errors():
            try:
                layout = await self.layouts.layout(event_id, CONSOLE_VIEWER)
            except (SQLAlchemyError, OSError) as exc:
                raise ConsoleError(f"PostgreSQL is unreachable: {exc}") from exc
            reading = await read_holds(self.store, event_id, taken_snapshot(self.sessions))
        return build_report(layout, reading)

    async def holds(self, event_id: uuid.UUID, limit: int) -> LiveHolds:
        with _domain_errors():
            now, total, live = await self.store.live_holds(event_id, limit)
        return LiveHolds(total, live_holds_out(now, live))

    async def release(self, hold_id: str) -> None:
        with _domain_errors():
            await self.store.release(hold_id, None)

    async def follow(self, event_id: uuid.UUID, tally: ChangeTally) -> None:
        version = await self.log.version(event_id)
        while True:
            try:
                for change in await self.log.after(event_id, version):
                    tally.add(change.cause, len(change.seats))
                    version = change.version
            except REDIS_DOWN:
                pass
            await asyncio.sleep(FOLLOW_SECONDS)

    async def aclose(self) -> None:
        await self.redis.aclose()
        if self.engine is not None:
            await self.engine.dispose()


@contextmanager
def _domain_errors() -> Iterator[None]:
    """Turns the hold layer's errors into console errors."""
    try:
        yield
    except DomainError as exc:
        raise ConsoleError(exc.detail) from exc
    except REDIS_DOWN as exc:
        raise ConsoleError(f"Redis is unreachable: {exc}") from exc
