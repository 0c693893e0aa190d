"""Load shedding: a worker that is far behind refuses new holds and reads at once (503 with
Retry-After) instead of queueing them, and goes on with everything else.

In a flash sale's first seconds thousands of buyers click at once. Queued, every request
waits behind all the others: in the benchmark's arrival burst holds waited 14-21 s, and so
did the bookings and payments of buyers who already had their seats (each of their
PostgreSQL round trips waits a full turn of the busy event loop). The routes marked
`shed_when_busy` (event pages, seat maps, availability, new holds: what a buyer simply asks
again) are counted while they are in hand, from the guard until their answer starts; past
`shed_backlog` of them, the next one answers 503 at once. Checkout steps (bookings,
payments), releases, sign-in and the waiting room are neither counted nor refused: a
payment waiting on its provider says nothing about how busy the worker is, and a buyer
who got seats gets to pay for them. A streamed answer stops counting once it has started.
"""

from __future__ import annotations

from typing import Any, Final, cast

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from seatlock.errors import Unavailable

# The route option (`@get(..., shed_when_busy=True)`) of what may be refused when busy.
SHED_WHEN_BUSY: Final = "shed_when_busy"
# Marks the scope of a request that the backlog counts.
_COUNTED: Final = "seatlock.backlog"


class Busy(Unavailable):
    cause = "busy"

    def __init__(self) -> None:
        super().__init__("the service is busy; please retry after Retry-After seconds")


class Backlog:
    """One per process: the requests of `shed_when_busy` routes in hand, not yet answering.
    Wraps the app, to see each answer start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
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

    def take(self, scope: Scope, limit: int) -> None:
        """Counts the request in, or refuses it while `limit` are in hand (0: no limit)."""
        if limit and self.waiting >= limit:
            raise Busy()
        self.waiting += 1
        _marks(scope)[_COUNTED] = True

    def _done(self, scope: Scope) -> None:
        marks = _marks(scope)
        if marks.pop(_COUNTED, False):
            self.waiting -= 1


def _marks(scope: Scope) -> dict[str, Any]:
    """The scope as a plain dict: Litestar passes the same one from the wrapper to the
    guard, so a mark the guard sets is seen when the answer starts."""
    return cast(dict[str, Any], scope)


def shed_if_busy(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Counts a request of a `shed_when_busy` route, or refuses it while the worker has
    `shed_backlog` such requests in hand."""
    if handler.opt.get(SHED_WHEN_BUSY):
        state = connection.app.state
        state.backlog.take(connection.scope, state.settings.shed_backlog)
