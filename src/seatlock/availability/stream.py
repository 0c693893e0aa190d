"""Server-Sent Events of an event's seat changes, for browsers' EventSource.

Events sent:
- `changes`: `{"version": v, "changes": [{"version", "state", "cause", "seats"}, ...]}`,
  with SSE id `v`, the version after the frame. `state` is the seats' new state (held,
  available, reserved or sold); `cause` says why (hold, release, ops_release, expiry,
  booking, payment, cancellation, booking_expiry, refresh).
- `resync`: `{"version": v}` (v may be null): the changes since the client's version can
  no longer be told; fetch the snapshot again and carry on from there.
A comment line every 15 seconds keeps proxies from closing a quiet connection. A client
that reconnects (EventSource sends `Last-Event-ID`) gets exactly the changes it missed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Final, Literal

import msgspec
from litestar.response import ServerSentEventMessage

from seatlock.availability.changes import Change, Frame, Resync, Subscription

KEEP_ALIVE_SECONDS: Final = 15.0
# The stream's first bytes: what EventSource waits before reconnecting after the
# connection drops. Comments are written by hand: Litestar's adds an empty data line.
OPENING: Final = b": seat changes\nretry: 1000\n\n"
KEEP_ALIVE: Final = b": keep-alive\n\n"


class ChangeOut(msgspec.Struct):
    version: int
    state: str
    cause: str
    seats: tuple[str, ...]


class ChangesOut(msgspec.Struct):
    version: int
    changes: list[ChangeOut]


class ResyncOut(msgspec.Struct):
    version: int | None


class StreamEvent(msgspec.Struct):
    """One event of the stream, as an EventSource hands it over (what the document
    promises of each event; the stream's bytes are written by `encode`)."""

    event: Literal["changes", "resync"]
    data: Annotated[str, msgspec.Meta(description="JSON: a `ChangesOut` or a `ResyncOut`")]
    id: Annotated[str | None, msgspec.Meta(description="the version, for Last-Event-ID")] = None


def _resync(version: int | None) -> bytes:
    return ServerSentEventMessage(
        data=msgspec.json.encode(ResyncOut(version)).decode(),
        event="resync",
        id=None if version is None else str(version),
    ).encode()


def _changes(changes: list[Change]) -> bytes:
    version = changes[-1].version
    answer = ChangesOut(version, [ChangeOut(c.version, c.state, c.cause, c.seats) for c in changes])
    return ServerSentEventMessage(
        data=msgspec.json.encode(answer).decode(), event="changes", id=str(version)
    ).encode()


def encode(frame: Frame) -> bytes:
    """A frame as SSE bytes; a `resync` entry of the log ends the changes before it."""
    if isinstance(frame, Resync):
        return _resync(frame.version)
    chunks: list[bytes] = []
    pending: list[Change] = []
    for change in frame:
        if change.state == "resync":
            if pending:
                chunks.append(_changes(pending))
            chunks.append(_resync(change.version))
            pending = []
        else:
            pending.append(change)
    if pending:
        chunks.append(_changes(pending))
    return b"".join(chunks)


def last_event_id(header: str | None, since: int | None) -> int | None:
    """The version a client has seen: EventSource's `Last-Event-ID` on a reconnect, else
    the `since` query parameter (the version of the snapshot it fetched first)."""
    if header is not None and header.strip().isdigit():
        return int(header)
    return since


async def sse_bytes(subscription: Subscription) -> AsyncIterator[bytes]:
    """The stream's bytes until the client goes away."""
    try:
        yield OPENING
        while True:
            frame = await subscription.next(KEEP_ALIVE_SECONDS)
            if frame is None:
                yield KEEP_ALIVE
            elif body := encode(frame):
                yield body
    finally:
        subscription.close()
