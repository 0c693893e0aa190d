"""Domain errors. Domain code raises these; `problems` turns them into HTTP answers."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the domain reports to a caller."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(DomainError):
    status = 422
    slug = "invalid-input"
    title = "The request cannot be carried out as asked"


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
