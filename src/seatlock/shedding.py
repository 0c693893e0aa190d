"""Load shedding: a worker that is far behind refuses new holds and reads at once (503 with
Retry-After) instead of queueing them, and goes on with everything else.

In a flash sale's first seconds thousands of buyers click at once. Queued, every request
waits behind all the others: in the benchmark's arrival burst holds waited 14-21 s, and so
did the bookings and payments of buyers who already had their seats (each of their
PostgreSQL round trips waits a full turn of the busy event loop). The routes marked
`shed_when_busy` (event pages, seat maps, availability, new holds: what a buyer simply asks
again) are counted while they are in hand, from the guard (once the caller is authorized
and the body is in) until their answer starts; with `shed_backlog` of them in hand (or,
with `shed_wait_ms` set, half as many once the oldest of them has waited that long), the
next one answers 503 at once, before its token is even read. Checkout steps (bookings,
payments), releases, sign-in and the waiting room are neither counted nor refused: a
payment waiting on its provider says nothing about how busy the worker is, and a buyer who
got seats gets to pay for them. A streamed answer stops counting once it has started; a
client that stalls half-way through a body holds no slot, and no body is read before the
caller's token is checked.

A refusal's Retry-After spreads the refused over the seconds ahead, no more per second than
the worker answered in the last one (`RetrySchedule`). With a fixed `Retry-After: 1`, the
crowd of a flash sale's first second came back a second later and was refused again, about
a thousand requests a second on two workers, for thirteen seconds, and the requests the
workers had in hand waited behind the refusals.

For the same reason a worker that is full refuses at the door (`Backlog`): a request for a
`shed_when_busy` route, told by its method and path, is answered before Litestar routes it,
with the same problem+json answer the guard would give, rather than after Litestar's
routing, the guard, exception handling and problem rendering. The guard still refuses
what arrives while the door was open.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

import msgspec
from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler

# Litestar's own CORS handling, so that a refusal at the door carries the same CORS headers
# as every other answer (browsers hide an answer without them from the page).
from litestar.middleware._internal.cors import CORSMiddleware
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from seatlock.errors import Unavailable
from seatlock.ops.metrics import UNAVAILABLE
from seatlock.problems import PROBLEM_BASE

# The route option (`@get(..., shed_when_busy=True)`) of what may be refused when busy.
SHED_WHEN_BUSY: Final = "shed_when_busy"
# Marks the scope of a request that the backlog counts.
_COUNTED: Final = "seatlock.backlog"
# The longest Retry-After a refusal gets, however far behind the worker is.
MAX_RETRY_AFTER_SECONDS: Final = 10


class Overloaded(Unavailable):
    """Not `errors.Busy` (a 409 about one hold or key): the whole worker is too busy."""

    slug = "overloaded"
    title = "Too busy for this request right now"
    cause = "overloaded"

    detail = "the service is busy; please retry after Retry-After seconds"

    def __init__(self, retry_after: int) -> None:
        super().__init__(self.detail)
        self.retry_after = retry_after


# The answer to a refusal at the door: what the guard's Overloaded renders to.
_OVERLOADED_BODY: Final = msgspec.json.encode(
    {
        "type": PROBLEM_BASE + Overloaded.slug,
        "title": Overloaded.title,
        "status": Overloaded.status,
        "detail": Overloaded.detail,
    }
)


class ShedRoutes:
    """The `shed_when_busy` routes of an app, told by method and path without Litestar's
    router: a request for one can be refused before it is routed."""

    def __init__(self, routes: Iterable[tuple[str, tuple[Any, ...], str]]) -> None:
        # (method, path components: a literal or a parameter's type, path template)
        self._routes = list(routes)

    @classmethod
    def of(cls, app: Litestar) -> ShedRoutes:
        return cls(
            (method, _components(route), route.path_format)
            for route in app.routes
            if isinstance(route, HTTPRoute)
            for handler in route.route_handlers
            if handler.opt.get(SHED_WHEN_BUSY)
            for method in handler.http_methods
        )

    def template(self, method: str, path: str) -> str | None:
        """The path template of the shed route the request is for, if any."""
        segments = path.strip("/").split("/")
        for wanted, components, template in self._routes:
            if wanted == method and _matches(components, segments):
                return template
        return None


def _components(route: HTTPRoute) -> tuple[Any, ...]:
    return tuple(
        part if isinstance(part, str) else part.parser or str for part in route.path_components
    )


def _matches(components: tuple[Any, ...], segments: list[str]) -> bool:
    if len(components) != len(segments):
        return False
    for component, segment in zip(components, segments, strict=True):
        if isinstance(component, str):
            if component != segment:
                return False
            continue
        try:
            component(segment)
        except ValueError:
            return False
    return True


class RetrySchedule:
    """When the refused are told to come back: in the next whole second of the clock
    until as many have been told so as the worker answered in the last second (at least
    `floor`), then in the one after, and so on up to MAX_RETRY_AFTER_SECONDS."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # The whole second being counted, its answers so far, and the last second's.
        self._second = 0
        self._answered = 0
        self._pace = 0
        # The second the refused are being sent back to, and how many were sent there.
        self._slot = 0
        self._in_slot = 0

    def answered(self) -> None:
        self._roll(int(self._clock()))
        self._answered += 1

    def retry_after(self, floor: int) -> int:
        now = int(self._clock())
        self._roll(now)
        if self._slot <= now:
            self._slot, self._in_slot = now + 1, 0
        if self._in_slot >= max(self._pace, floor, 1):
            if self._slot - now >= MAX_RETRY_AFTER_SECONDS:
                return MAX_RETRY_AFTER_SECONDS
            self._slot, self._in_slot = self._slot + 1, 0
        self._in_slot += 1
        return self._slot - now

    def _roll(self, now: int) -> None:
        if now != self._second:
            self._pace = self._answered if now == self._second + 1 else 0
            self._second, self._answered = now, 0


class Backlog:
    """One per process: the requests of `shed_when_busy` routes in hand, not yet answering.
    Wraps the app, to see each answer start.

    A worker is full with `limit` of them in hand; and, with `max_wait` (seconds), already
    with half as many once the oldest of them has waited that long. A count alone either
    lets a busy worker's requests queue up to the limit, or refuses an idle worker's burst
    of a few more: how long the oldest has waited tells a worker that is behind from one
    that has many requests and answers them at once."""

    def __init__(
        self,
        app: ASGIApp,
        schedule: RetrySchedule | None = None,
        *,
        limit: int = 0,
        max_wait: float = 0.0,
        routes: ShedRoutes | None = None,
        cors: CORSConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """While the worker is full (`limit` 0: never) the next are refused: at the door
        for `routes`, else by the guard."""
        self.app = app
        self.schedule = schedule or RetrySchedule()
        self.in_hand = 0
        # The most in hand at once since the metrics last read it.
        self._peak = 0
        self._limit = limit
        self._max_wait = max_wait
        self._clock = clock
        # With `max_wait` only: the requests in hand by the order they were taken (ticket,
        # when taken). One answered before an older one stays until that one is answered
        # too (`_answered`), so that each request costs one append and one pop.
        self._taken: deque[tuple[int, float]] = deque()
        self._answered: set[int] = set()
        self._tickets = itertools.count()
        self._routes = routes or ShedRoutes(())
        self._refusal: ASGIApp = self._refuse
        if cors is not None:
            self._refusal = CORSMiddleware(app=self._refuse, config=cors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        if self._full():
            template = self._routes.template(scope["method"], scope["path"])
            if template is not None:
                # What the request log and the metrics name the route by.
                _marks(scope)["path_template"] = template
                await self._refusal(scope, receive, send)
                return
        answering = False

        async def send_answer(message: Message) -> None:
            nonlocal answering
            if not answering and message["type"] == "http.response.start":
                answering = True
                self._done(scope)
            await send(message)

        try:
            await self.app(scope, receive, send_answer)
        finally:
            if not answering:
                self._done(scope)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        retry_after = self.schedule.retry_after(floor=self._limit)
        UNAVAILABLE.labels(Overloaded.cause).inc()
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": Overloaded.status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(_OVERLOADED_BODY)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": _OVERLOADED_BODY, "more_body": False})

    def refuse_if_full(self) -> None:
        """Overloaded while the worker is full (see the class)."""
        if self._full():
            raise Overloaded(self.schedule.retry_after(floor=self._limit))

    def take(self, scope: Scope) -> None:
        """Counts the request in, or refuses it while the worker is full."""
        self.refuse_if_full()
        self.in_hand += 1
        self._peak = max(self._peak, self.in_hand)
        _marks(scope)[_COUNTED] = self._note_taken()

    def read_peak(self) -> int:
        """The most requests in hand at once since the last call."""
        peak, self._peak = self._peak, self.in_hand
        return peak

    def _full(self) -> bool:
        if not self._limit or self.in_hand < self._limit // 2:
            return False
        return self.in_hand >= self._limit or (
            bool(self._max_wait) and self._oldest_wait() >= self._max_wait
        )

    def _note_taken(self) -> int | None:
        """The request's ticket among those whose wait is watched; none while the wait
        does not count, so that counting by the limit alone costs nothing more."""
        if not self._max_wait:
            return None
        ticket = next(self._tickets)
        self._taken.append((ticket, self._clock()))
        return ticket

    def _oldest_wait(self) -> float:
        """How long the oldest request in hand has waited."""
        return self._clock() - self._taken[0][1] if self._taken else 0.0

    def _done(self, scope: Scope) -> None:
        marks = _marks(scope)
        if _COUNTED not in marks:
            return
        ticket = marks.pop(_COUNTED)
        self.in_hand -= 1
        self.schedule.answered()
        if ticket is not None:
            self._answered.add(ticket)
            while self._taken and self._taken[0][0] in self._answered:
                self._answered.discard(self._taken.popleft()[0])


def _marks(scope: Scope) -> dict[str, Any]:
    """Litestar hands the guard the very scope the wrapper got: the guard's mark is seen
    when the answer starts."""
    return cast(dict[str, Any], scope)


def refuse_if_busy(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """First of all, before the caller's token is read: a `shed_when_busy` request is
    refused while the worker is full (`Backlog`)."""
    if handler.opt.get(SHED_WHEN_BUSY):
        backlog: Backlog = connection.app.state.backlog
        backlog.refuse_if_full()


async def count_in_hand(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Once the caller is authorized: counts a request of a `shed_when_busy` route, or
    refuses it if the backlog filled meanwhile. It is counted once its body is in: a client
    that sends half a body and stalls holds no slot, and nobody gets a body read before
    the token is checked."""
    if not handler.opt.get(SHED_WHEN_BUSY) or not isinstance(connection, Request):
        return
    if connection.method != "GET":
        await connection.body()  # kept by Litestar for the handler
    backlog: Backlog = connection.app.state.backlog
    backlog.take(connection.scope)
