"""Request logs: one structured line per request, saying what the request did, and the
request id that ties a request's lines together.

What a request did in the domain (a hold placed or released, a booking created, a payment
settled) is `record`ed: its facts become fields of the request's own line, and `did` lists
what happened, so a hold costs one log line, not two. Done outside a request (a background
sweep), it is a line of its own.

Every request gets an id: the caller's `X-Request-ID` when it is a sane token (at most 64
letters, digits and `-_.:`), a new one otherwise; it is echoed on the answer and added to
every log line written while the request runs (the domain's lines about holds, bookings
and payments included). Lines are JSON objects by default, plain text with
`SEATLOCK_LOG_FORMAT=plain`; extra fields given to a log call (`extra={"hold_id": ...}`)
become fields of the line.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from seatlock.ops.metrics import HTTP_REQUESTS, HTTP_SECONDS

HEADER = "x-request-id"
SANE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Methods are a label of the request metrics: anything else is counted as "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route of a request that matched none (a 404 or 405 of the router).
UNMATCHED = "unmatched"
HANDLER_NAME = "seatlock"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# The current request's facts told by `record`, for its line.
_facts: ContextVar[dict[str, Any] | None] = ContextVar("request_facts", default=None)

logger = logging.getLogger("seatlock.requests")
domain_logger = logging.getLogger("seatlock")


def record(what: str, **facts: str | int) -> None:
    """Tells what was just done (`what`, e.g. "hold created") with its ids: fields of the
    current request's line, or a line of its own outside a request."""
    told = _facts.get()
    if told is None:
        domain_logger.info(what, extra=facts)
        return
    told.setdefault("did", []).append(what)
    told.update(facts)


# What every LogRecord has; anything else on a record came as `extra` and is a field.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    found = {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}
    if (current := request_id.get()) is not None:
        found.setdefault("request_id", current)
    return found


# Anything msgspec does not know (an exception, an enum of another library) is written as text.
_json = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _json.encode(line).decode()


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        head, newline, rest = text.partition("\n")
        extra = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        return f"{head} {extra}{newline}{rest}" if extra else text


def configure_logging(log_format: Literal["json", "plain"]) -> None:
    """One handler on the root logger, to standard error, in the chosen format; calling it
    again replaces it (every app of a test run configures it)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else PlainFormatter())
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def _given_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if SANE_ID.fullmatch(text) else None
    return None


class RequestObserver:
    """Wraps the whole app (routing included, so that a 404 is seen too): times each HTTP
    request, counts it by route template, logs it, and carries its request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Each (route, method, status)'s two series, looked up once: `labels()` is not free.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        rid = _given_id(scope) or secrets.token_hex(16)
        token = request_id.set(rid)
        facts: dict[str, Any] = {}
        facts_token = _facts.set(facts)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, time.perf_counter() - started, facts)
            _facts.reset(facts_token)
            request_id.reset(token)

    def _observe(
        self, scope: HTTPScope, status: int, seconds: float, facts: dict[str, Any]
    ) -> None:
        route = scope.get("path_template") or UNMATCHED
        method = scope["method"] if scope["method"] in METHODS else "other"
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (HTTP_REQUESTS.labels(*key), HTTP_SECONDS.labels(*key))
        requests, seconds_taken = series
        requests.inc()
        seconds_taken.observe(seconds)
        user = scope.get("user")
        logger.info(
            "%s %s %s",
            method,
            route,
            status,
            extra={
                **facts,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "user_id": str(user.id) if user is not None else None,
            },
        )
