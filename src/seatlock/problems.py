"""The one mapping from errors to RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from seatlock.errors import DomainError, Unauthorized
from seatlock.ops.metrics import UNAVAILABLE

logger = logging.getLogger("seatlock")

PROBLEM_BASE = "/problems/"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def from_domain_error(exc: DomainError) -> ProblemDetailsException:
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status == 503:
        UNAVAILABLE.labels(getattr(exc, "cause", exc.slug)).inc()
    return ProblemDetailsException(
        status_code=exc.status,
        type_=PROBLEM_BASE + exc.slug,
        title=exc.title,
        detail=exc.detail,
        extra=exc.members() or None,
        headers=headers or None,
    )


# Litestar names the whole request body after the handler's parameter, `data`.
BODY_PARAMETER = "data"
# msgspec reports a missing or unknown field at the object that holds it, naming the field
# only in its message: the field is what the caller needs to see.
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]*)`")
# Litestar reports a missing header, query, cookie or path parameter in its message only.
_MISSING_PARAMETER = re.compile(r"^Missing required (\w+) parameter '([^']*)'")


def _validation_error(item: dict[str, Any]) -> dict[str, Any]:
    field, message = str(item.get("key", "")), str(item.get("message", ""))
    if item.get("source") == "body":
        if field == BODY_PARAMETER:
            field = ""
        if message == repr(BODY_PARAMETER):
            # Litestar's words for a request without any body.
            message = "a JSON request body is required"
        if named := _NAMED_FIELD.match(message):
            field = f"{field}.{named[1]}" if field else named[1]
    return {"field": field, "source": item.get("source", ""), "message": message}


def _validation_errors(exc: ValidationException) -> list[dict[str, Any]]:
    if isinstance(exc.extra, list):
        return [_validation_error(item) for item in exc.extra if isinstance(item, dict)]
    if missing := _MISSING_PARAMETER.match(exc.detail):
        return [{"field": missing[2], "source": missing[1], "message": "required"}]
    return []


def from_http_exception(exc: HTTPException) -> ProblemDetailsException:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        return ProblemDetailsException(
            status_code=status,
            type_=PROBLEM_BASE + "validation",
            title="The request is not valid",
            detail=exc.detail,
            extra={"errors": _validation_errors(exc)},
            headers=exc.headers,
        )
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return ProblemDetailsException(
        status_code=status,
        type_="about:blank",
        title=_phrase(status),
        detail=exc.detail,
        headers=headers or None,
    )


def from_unhandled(exc: Exception) -> ProblemDetailsException:
    logger.exception("unhandled error", exc_info=exc)
    return ProblemDetailsException(
        status_code=500,
        type_="about:blank",
        title=_phrase(500),
        detail="An unexpected error occurred; it has been logged.",
    )


def _retry_soon(detail: str, cause: str) -> ProblemDetailsException:
    """503 for a request that changed nothing and can simply be sent again."""
    UNAVAILABLE.labels(cause).inc()
    return ProblemDetailsException(
        status_code=503,
        type_="about:blank",
        title=_phrase(503),
        detail=detail,
        headers={"Retry-After": "1"},
    )


def from_pool_timeout(exc: PoolTimeout) -> ProblemDetailsException:
    # Every database connection of this process stayed busy past the pool timeout: an
    # overload to retry after, not a fault.
    logger.warning("no database connection free in time: %s", exc)
    return _retry_soon("The service is busy; please retry shortly.", "db_pool")


# PostgreSQL aborted the transaction to resolve a deadlock or a serialization conflict:
# nothing was written, and the same request can simply be sent again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
# PostgreSQL is shutting down, starting up or restarting (admin shutdown, crash shutdown,
# cannot connect now), or the connection broke (class 08): an outage, not a fault.
OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
# Text PostgreSQL cannot store (a NUL character, an invalid byte sequence): bad input.
UNSTORABLE_TEXT_SQLSTATES = frozenset({"22021", "22P05"})


def _outage_state(sqlstate: str | None) -> bool:
    return sqlstate in OUTAGE_SQLSTATES or (sqlstate or "").startswith("08")


def _is_outage(exc: DBAPIError, sqlstate: str | None) -> bool:
    lost = exc.connection_invalidated or isinstance(exc.orig, ConnectionError | TimeoutError)
    return lost or _outage_state(sqlstate)


def from_outage(exc: Exception) -> ProblemDetailsException:
    # The request's transaction never committed: it can be sent again once PostgreSQL is
    # back, which a restart makes a matter of seconds.
    logger.warning("PostgreSQL unreachable, answered 503: %s", exc)
    return _retry_soon("The database is unavailable; please retry shortly.", "database")


def from_database_error(exc: DBAPIError) -> ProblemDetailsException:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in UNSTORABLE_TEXT_SQLSTATES:
        return ProblemDetailsException(
            status_code=422,
            type_=PROBLEM_BASE + "unstorable-text",
            title="The request contains text that cannot be stored",
            detail="Text fields may not contain NUL characters.",
        )
    if _is_outage(exc, sqlstate):
        return from_outage(exc)
    if sqlstate not in RETRYABLE_SQLSTATES:
        return from_unhandled(exc)
    logger.warning("transaction aborted by PostgreSQL, answered 503: %s", exc.orig)
    return _retry_soon(
        "The request collided with another one and changed nothing; please retry.", "db_conflict"
    )


def from_recursion_error(exc: RecursionError) -> ProblemDetailsException:
    # msgspec gives up on JSON nested deeper than it can parse: bad input, not a fault.
    if "deserializing" not in str(exc):
        return from_unhandled(exc)
    return ProblemDetailsException(
        status_code=400,
        type_=PROBLEM_BASE + "too-deeply-nested",
        title="The request body is nested too deeply",
        detail="JSON bodies may not be nested this deeply.",
    )


def from_other_error(exc: Exception) -> ProblemDetailsException:
    # asyncpg's own errors carry their SQLSTATE, and SQLAlchemy passes them on unwrapped
    # when it opens a connection: "the database system is starting up" during a restart.
    if _outage_state(getattr(exc, "sqlstate", None)):
        return from_outage(exc)
    return from_unhandled(exc)


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={
                DomainError: from_domain_error,
                HTTPException: from_http_exception,
                PoolTimeout: from_pool_timeout,
                DBAPIError: from_database_error,
                # A connection refused or timed out before any DBAPI call could wrap it.
                ConnectionError: from_outage,
                TimeoutError: from_outage,
                RecursionError: from_recursion_error,
                Exception: from_other_error,
            }
        )
    )
