"""Domain errors. Domain code raises these; `problems` turns them into HTTP answers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


class DomainError(Exception):
    """Base of every error the domain reports to a caller."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    # Seconds after which the same request may succeed, sent as Retry-After where set.
    retry_after: int | None = None
    # What to do once the transaction this error ends is over, committed or rolled back
    # (Redis calls that must not wait while it holds row locks); run by whoever ends it.
    after_transaction: Callable[[], Awaitable[None]] | None = None

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        # The request field the problem is about, where it is about one.
        self.field = field

    def members(self) -> dict[str, Any]:
        """The problem's extension members beside type, title, status and detail."""
        return {"field": self.field} if self.field else {}


class InvalidInput(DomainError):
    status = 422
    slug = "invalid-input"
    title = "The request cannot be carried out as asked"


class UnknownSeats(InvalidInput):
    """Seat ids that are not seats of the event asked about."""

    def __init__(self, detail: str, seats: Sequence[uuid.UUID]) -> None:
        super().__init__(detail)
        self.seats = list(seats)

    def members(self) -> dict[str, Any]:
        return {"unknown_seats": [str(seat) for seat in self.seats]}


class Unauthorized(DomainError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"


class Forbidden(DomainError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(DomainError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict with the current state"


class Busy(Conflict):
    """A conflict that passes by itself within moments (a hold being turned into a booking
    by another request): the same request may succeed when sent again, so an
    Idempotency-Key never keeps it as its answer."""

    slug = "busy"
    title = "Busy with another request; retry shortly"


class SeatConflict(Conflict):
    """A conflict over named seats, with the reason they could not be had where known."""

    def __init__(
        self, detail: str, conflicts: Sequence[uuid.UUID], reason: str | None = None
    ) -> None:
        super().__init__(detail)
        self.conflicts = list(conflicts)
        self.reason = reason

    def members(self) -> dict[str, Any]:
        found: dict[str, Any] = {"conflicts": [str(seat) for seat in self.conflicts]}
        return found | {"reason": self.reason} if self.reason else found


class Gone(DomainError):
    status = 410
    slug = "gone"
    title = "No longer available"


class TooManyRequests(DomainError):
    status = 429
    slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(DomainError):
    status = 503
    slug = "unavailable"
    title = "Service temporarily unavailable"
    # Every outage answer says when to try again (Redis is retried within a second).
    retry_after = 1
    # What was unavailable, for the metrics of 503 answers.
    cause = "redis"
