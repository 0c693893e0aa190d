"""Live availability for frontends: the layout a seat map is drawn from (cacheable until
the seat map or the price categories change), the versioned snapshot of seat states (the
same for everyone, so cacheable by CDNs for a moment), and the stream of changes that
keeps it current."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeAlias

from litestar import MediaType, Request, Response, Router, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.response import Stream

from seatlock.auth.access import PUBLIC, provide_viewer
from seatlock.auth.tokens import Principal
from seatlock.availability import stream
from seatlock.availability.changes import Fanout
from seatlock.availability.layout import LayoutCache, LayoutOut
from seatlock.availability.snapshot import AvailabilityCache, AvailabilityOut
from seatlock.holds.store import redis_or_503
from seatlock.redis_client import Breaker

# Public layouts may be kept by browsers and shared caches; revalidation is a 304.
PUBLIC_CACHING: Final = "public, max-age=60, stale-while-revalidate=600"
# A draft's layout is for its organizer and admins: no cache keeps it.
PRIVATE_CACHING: Final = "private, no-store"

# The snapshot is the same for every caller: shared caches may serve it for a second, and
# a little longer while they fetch a newer one.
SNAPSHOT_CACHING: Final = "public, max-age=1, stale-while-revalidate=5"


@dataclass(frozen=True)
class SeatsView:
    """What the routes of an event's layout, snapshot and stream of changes work with, as
    one dependency: Litestar resolves several dependencies of a handler in a task group,
    one task each, which cost these reads (a crowd's most frequent request) more than the
    dependencies themselves."""

    viewer: Principal | None
    layouts: LayoutCache
    availability: AvailabilityCache
    redis_breaker: Breaker
    fanout: Fanout


View: TypeAlias = NamedDependency[SeatsView]


def _seats_view(request: Request[Any, Any, Any]) -> SeatsView:
    state = request.app.state
    return SeatsView(
        provide_viewer(request),
        state.layouts,
        state.availability,
        state.redis_breaker,
        state.fanout,
    )


def matches(if_none_match: str | None, version: str) -> bool:
    """Whether an If-None-Match header names this version (weak comparison, RFC 9110)."""
    if if_none_match is None:
        return False
    tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return any(tag in ("*", f'"{version}"') for tag in tags)


def _not_modified(headers: dict[str, str]) -> Response[Any]:
    return Response(None, status_code=304, headers=headers)


@get(
    "/events/{event_id:uuid}/layout",
    roles=PUBLIC,
    shed_when_busy=True,
    summary="The seat layout of an event",
    description=(
        "Every seat of the event in layout order: sections, then rows, in natural order of "
        "their labels, then seat numbers. A seat's index is its position (0-based) in that "
        "order, the index by which availability names it. Answers carry the layout's "
        "version as a strong ETag; `If-None-Match` with it answers 304. The layout changes "
        "only with the seat map or the price categories. Drafts: their organizer and admins "
        "only (404 for everybody else)."
    ),
    response_description="the layout",
    response_headers=[
        ResponseHeader(
            name="ETag", documentation_only=True, description="the layout's version, quoted"
        ),
        ResponseHeader(
            name="Cache-Control",
            documentation_only=True,
            description=f"`{PUBLIC_CACHING}`; a draft's: `{PRIVATE_CACHING}`",
        ),
    ],
    responses={304: ResponseSpec(None, description="If-None-Match names the current version")},
)
async def get_layout(
    event_id: FromPath[uuid.UUID],
    view: View,
    if_none_match: Annotated[
        str | None, HeaderParameter(name="If-None-Match", max_length=4096, required=False)
    ] = None,
) -> Response[LayoutOut]:
    layout = await view.layouts.layout(event_id, view.viewer)
    headers = {
        "ETag": f'"{layout.version}"',
        "Cache-Control": PUBLIC_CACHING if layout.public else PRIVATE_CACHING,
    }
    if matches(if_none_match, layout.version):
        return _not_modified(headers)
    return Response(layout.answer(), headers=headers)


@get(
    "/events/{event_id:uuid}/availability",
    roles=PUBLIC,
    shed_when_busy=True,
    response_headers=[
        ResponseHeader(
            name="ETag",
            documentation_only=True,
            description="the version shown and the layout's, quoted; absent without holds",
        ),
        ResponseHeader(
            name="Cache-Control",
            documentation_only=True,
            description=f"`{SNAPSHOT_CACHING}`; a draft's, or one without holds: "
            f"`{PRIVATE_CACHING}`",
        ),
    ],
    responses={
        200: ResponseSpec(AvailabilityOut, description="the seats' states at one version"),
        304: ResponseSpec(None, description="If-None-Match names the current version"),
    },
)
async def get_availability(
    event_id: FromPath[uuid.UUID],
    view: View,
    if_none_match: Annotated[
        str | None, HeaderParameter(name="If-None-Match", max_length=4096, required=False)
    ] = None,
) -> Response[Any]:
    """Every seat that is not available (held, reserved, sold), by its index in the layout,
    with the counts of available seats per section and price category. Bring it up to date
    with the stream of changes from its `version` on."""
    layout = await view.layouts.layout(event_id, view.viewer)
    availability = view.availability
    # While Redis fails (and for a moment after), PostgreSQL alone answers, without holds.
    snapshot, _ = await view.redis_breaker.attempt(lambda: availability.snapshot(layout), None)
    if snapshot is None:
        snapshot = await availability.without_holds(layout)
    cacheable = layout.public and snapshot.etag is not None
    headers = {"Cache-Control": SNAPSHOT_CACHING if cacheable else PRIVATE_CACHING}
    if snapshot.etag is not None:
        headers["ETag"] = snapshot.etag
        if matches(if_none_match, snapshot.etag.strip('"')):
            return _not_modified(headers)
    return Response(snapshot.body, media_type=MediaType.JSON, headers=headers)


@get(
    "/events/{event_id:uuid}/availability/stream",
    roles=PUBLIC,
    media_type="text/event-stream",
    responses={
        200: ResponseSpec(
            stream.StreamEvent,
            media_type="text/event-stream",
            description="Server-Sent Events `changes` and `resync` (see the README)",
        )
    },
)
async def stream_changes(
    event_id: FromPath[uuid.UUID],
    view: View,
    since: Annotated[
        int | None,
        # Versions are Redis stream ids, 64-bit.
        QueryParameter(ge=0, le=2**63 - 1, description="the version already seen (a snapshot's)"),
    ] = None,
    last_event_id: Annotated[
        str | None, HeaderParameter(name="Last-Event-ID", max_length=40, required=False)
    ] = None,
) -> Stream:
    """Every change of the event's seats as it happens, in frames of about 100 ms; a
    reconnect with `Last-Event-ID` (or `since`) gets exactly the changes it missed."""
    await view.layouts.layout(event_id, view.viewer)
    seen = stream.last_event_id(last_event_id, since)
    async with redis_or_503():
        subscription = await view.fanout.subscribe(event_id, seen)
    return Stream(
        stream.sse_bytes(subscription),
        media_type="text/event-stream",
        # Proxies must pass each frame on at once.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


availability_router = Router(
    "/api",
    route_handlers=[get_layout, get_availability, stream_changes],
    dependencies={"view": Provide(_seats_view, sync_to_thread=False)},
    tags=["availability"],
)
