"""Load shedding: a worker that is far behind refuses new holds and reads at once (503 with
Retry-After) instead of queueing them, and goes on with everything else.

In a flash sale's first seconds thousands of buyers click at once. Queued, every request
waits behind all the others: in the benchmark's arrival burst holds waited 14-21 s, and so
did the bookings and payments of buyers who already had their seats (each of their
PostgreSQL round trips waits a full turn of the busy event loop). The routes marked
`shed_when_busy` (event pages, seat maps, availability, new holds: what a buyer simply asks
again) are counted while they are in hand, from the guard (once their body is in) until
their answer starts; with `shed_backlog` of them in hand, the next one answers 503 at once.
Checkout steps (bookings, payments), releases, sign-in and the waiting room are neither
counted nor refused: a payment waiting on its provider says nothing about how busy the
worker is, and a buyer who got seats gets to pay for them. A streamed answer stops
counting once it has started; a client that stalls half-way through a body holds no slot.
"""

from __future__ import annotations

from typing import Any, Final, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from seatlock.errors import Unavailable

# The route option (`@get(..., shed_when_busy=True)`) of what may be refused when busy.
SHED_WHEN_BUSY: Final = "shed_when_busy"
# Marks the scope of a request that the backlog counts.
_COUNTED: Final = "seatlock.backlog"


class Overloaded(Unavailable):
    """Not `errors.Busy` (a 409 about one hold or key): the whole worker is too busy."""

    slug = "overloaded"
    title = "Too busy for this request right now"
    cause = "overloaded"

    def __init__(self) -> None:
        super().__init__("the service is busy; please retry after Retry-After seconds")


class Backlog:
    """One per process: the requests of `shed_when_busy` routes in hand, not yet answering.
    Wraps the app, to see each answer start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_hand = 0
        # The most in hand at once since the metrics last read it.
        self._peak = 0

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

    def refuse_if_full(self, limit: int) -> None:
        """Overloaded while `limit` requests are in hand (0: no limit)."""
        if limit and self.in_hand >= limit:
            raise Overloaded()

    def take(self, scope: Scope, limit: int) -> None:
        """Counts the request in, or refuses it while `limit` are in hand."""
        self.refuse_if_full(limit)
        self.in_hand += 1
        self._peak = max(self._peak, self.in_hand)
        _marks(scope)[_COUNTED] = True

    def read_peak(self) -> int:
        """The most requests in hand at once since the last call."""
        peak, self._peak = self._peak, self.in_hand
        return peak

    def _done(self, scope: Scope) -> None:
        marks = _marks(scope)
        if marks.pop(_COUNTED, False):
            self.in_hand -= 1


def _marks(scope: Scope) -> dict[str, Any]:
    """Litestar hands the guard the very scope the wrapper got: the guard's mark is seen
    when the answer starts."""
    return cast(dict[str, Any], scope)


async def shed_if_busy(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Counts a request of a `shed_when_busy` route, or refuses it while the worker has
    `shed_backlog` such requests in hand. A request is counted once its body is in: a
    client that sends half a body and stalls holds no slot."""
    if not handler.opt.get(SHED_WHEN_BUSY) or not isinstance(connection, Request):
        return
    state = connection.app.state
    backlog: Backlog = state.backlog
    limit: int = state.settings.shed_backlog
    backlog.refuse_if_full(limit)
    if connection.method != "GET":
        await connection.body()  # kept by Litestar for the handler
    backlog.take(connection.scope, limit)
