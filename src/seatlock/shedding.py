"""Load shedding: a worker that is far behind refuses new holds and reads at once (503 with
Retry-After) instead of queueing them, and goes on with everything else.

In a flash sale's first seconds thousands of buyers click at once. Queued, every request
waits behind all the others: in the benchmark's arrival burst holds waited 14-21 s, and so
did the bookings and payments of buyers who already had their seats. What a worker is
behind by is its backlog: the HTTP requests it has taken that have not started their
answer yet. Past `shed_backlog` of them, the routes marked `shed_when_busy` (event pages,
seat maps, availability, new holds: what a buyer simply asks again) answer 503 at once;
checkout steps (bookings, payments), releases, sign-in and the waiting room are never
refused here, so a buyer who got seats gets to pay for them. A streamed answer leaves the
backlog when its first bytes go out.
"""

from __future__ import annotations

from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from seatlock.errors import Unavailable

# The route option (`@get(..., shed_when_busy=True)`) of what may be refused when busy.
SHED_WHEN_BUSY: Final = "shed_when_busy"


class Busy(Unavailable):
    cause = "busy"

    def __init__(self) -> None:
        super().__init__("the service is busy; please retry after Retry-After seconds")


class Backlog:
    """One per process: the HTTP requests taken and not yet answering. Wraps the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        self.waiting += 1
        answering = False

        async def send_answer(message: Message) -> None:
            nonlocal answering
            if not answering and message["type"] == "http.response.start":
                answering = True
                self.waiting -= 1
            await send(message)

        try:
            await self.app(scope, receive, send_answer)
        finally:
            if not answering:
                self.waiting -= 1


def shed_if_busy(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Refuses a request of a `shed_when_busy` route while the worker is far behind."""
    if not handler.opt.get(SHED_WHEN_BUSY):
        return
    state = connection.app.state
    limit: int = state.settings.shed_backlog
    # The backlog counts this request too.
    if limit and state.backlog.waiting > limit:
        raise Busy()
