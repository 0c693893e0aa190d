"""/api/events and /api/images: browsing, managing and illustrating events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, Router, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ValidationException
from litestar.params import FromPath, JSONBody, MultipartBody, PathParameter, QueryParameter
from msgspec import UNSET

from seatlock import deps, paging
from seatlock.auth.access import ADMINS, PUBLIC, STAFF
from seatlock.bodies import search_text
from seatlock.events import events, images, listings
from seatlock.events.events import EventChanges, EventCreate, EventView
from seatlock.events.seatmaps import SeatRow, seat_rows
from seatlock.holds.replies import HeldSeat
from seatlock.models import Event, EventStatus, SeatState
from seatlock.redis_client import best_effort

# The most an image upload may send, whatever the settings allow: the configured limit
# (SEATLOCK_MAX_IMAGE_BYTES, at most this) is enforced on the parsed file.
MAX_UPLOAD_BYTES: Final = 20 * 1024 * 1024 + 16_384
IMAGE_CACHING: Final = "public, max-age=31536000, immutable"


class PriceCategoryOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    price_minor: int
    currency: str


class SeatCounts(msgspec.Struct):
    total: int
    available: int
    reserved: int
    sold: int


class EventSummary(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    organizer_id: uuid.UUID
    title: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    sale_starts_at: datetime
    sale_ends_at: datetime
    status: EventStatus
    image_url: str | None


class EventDetail(EventSummary, kw_only=True):
    description: str
    hold_ttl_seconds: int
    max_hold_extensions: int
    max_hold_lifetime_seconds: int
    max_seats_per_booking: int
    payment_window_seconds: int
    price_categories: list[PriceCategoryOut]
    seat_counts: SeatCounts
    created_at: datetime
    updated_at: datetime


class CreatedEvent(EventDetail, kw_only=True):
    seats: list[SeatRow]


class SeatOut(msgspec.Struct):
    id: uuid.UUID
    section: str
    row: str
    number: int
    price_category_id: uuid.UUID
    accessible: bool
    # PostgreSQL's available, reserved or sold, or "held" while a live hold has the seat.
    state: str
    # True on the seats of the caller's own live holds.
    mine: bool = False


class SeatMapOut(msgspec.Struct):
    event_id: uuid.UUID
    # False when Redis could not be asked: then no seat shows as held.
    holds_shown: bool
    seats: list[SeatOut]


@dataclass
class ImageUpload:
    """The multipart form of an image upload: its one part, `file`."""

    file: UploadFile


class ImageOut(msgspec.Struct):
    image_url: str
    media_type: str
    size: int


# A moment to filter by, as an RFC 3339 date-time. Read from text here: Litestar would also
# take a number (seconds since 1970) or `null` for a date-time parameter.
Moment = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=40,
        schema_extra={"format": "date-time"},
        description="an RFC 3339 date-time with its offset, e.g. 2031-01-01T19:00:00+01:00",
    ),
]


def _moment(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        raise ValidationException(
            f"{name} is not a date-time",
            extra=[{"key": name, "source": "query", "message": "not an RFC 3339 date-time"}],
        ) from None


def image_url(key: str) -> str:
    return f"/api/images/{key}"


def event_summary(event: Event) -> EventSummary:
    return EventSummary(
        id=event.id,
        organizer_id=event.organizer_id,
        title=event.title,
        venue=event.venue,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        sale_starts_at=event.sale_starts_at,
        sale_ends_at=event.sale_ends_at,
        status=event.status,
        image_url=image_url(event.image_key) if event.image_key else None,
    )


def event_detail(view: EventView) -> EventDetail:
    event, counts = view.event, view.seat_counts
    return EventDetail(
        **msgspec.structs.asdict(event_summary(event)),
        description=event.description,
        hold_ttl_seconds=event.hold_ttl_seconds,
        max_hold_extensions=event.max_hold_extensions,
        max_hold_lifetime_seconds=event.max_hold_lifetime_seconds,
        max_seats_per_booking=event.max_seats_per_booking,
        payment_window_seconds=event.payment_window_seconds,
        price_categories=[
            PriceCategoryOut(c.id, c.name, c.price_minor, c.currency) for c in view.categories
        ],
        seat_counts=SeatCounts(
            total=sum(counts.values()),
            available=counts[SeatState.AVAILABLE],
            reserved=counts[SeatState.RESERVED],
            sold=counts[SeatState.SOLD],
        ),
        created_at=event.created_at,
        updated_at=event.updated_at,
    )


@get("/events", roles=PUBLIC, shed_when_busy=True)
async def list_events(
    request: Request[Any, Any, Any],
    reader: deps.Reader,
    limit: paging.Limit = paging.DEFAULT_LIMIT,
    cursor: paging.Cursor = None,
    status: Annotated[list[EventStatus] | None, QueryParameter(max_items=4)] = None,
    starts_from: Moment = None,
    starts_until: Moment = None,
    q: Annotated[str | None, search_text(100)] = None,
) -> paging.Page[EventSummary]:
    """Events by start time; drafts only for their organizer and admins. No `total`:
    counting would cost a scan of the events."""
    starts = _moment("starts_from", starts_from), _moment("starts_until", starts_until)
    query = listings.EventQuery(status, *starts, q)
    after = paging.decode_cursor(cursor, paging.TimeAndId)
    found = await listings.list_events(reader.session, reader.viewer, query, limit, after)
    return paging.keyset(request, found, limit, None, _starts, event_summary)


def _starts(event: Event) -> tuple[datetime, uuid.UUID]:
    return event.starts_at, event.id


@get("/events/{event_id:uuid}", roles=PUBLIC, shed_when_busy=True)
async def get_event(event_id: FromPath[uuid.UUID], reader: deps.Reader) -> EventDetail:
    """One event with its price categories and seat counts; drafts only for their
    organizer and admins."""
    event = await events.visible_event(reader.session, event_id, reader.viewer)
    return event_detail(await events.event_view(reader.session, event))


def _seat_out(
    seat: SeatRow, held: Mapping[uuid.UUID, HeldSeat], viewer_id: uuid.UUID | None
) -> SeatOut:
    hold = held.get(seat.id) if seat.state is SeatState.AVAILABLE else None
    return SeatOut(
        id=seat.id,
        section=seat.section,
        row=seat.row,
        number=seat.number,
        price_category_id=seat.price_category_id,
        accessible=seat.accessible,
        state="held" if hold else seat.state.value,
        mine=hold is not None and hold.owner_id == viewer_id,
    )


@get(
    "/events/{event_id:uuid}/seats",
    roles=PUBLIC,
    operation_id="getSeatMap",
    shed_when_busy=True,
)
async def get_seats(event_id: FromPath[uuid.UUID], reader: deps.Reader) -> SeatMapOut:
    """Every seat with its state: PostgreSQL's, with live holds from Redis on top."""
    viewer, holds = reader.viewer, reader.holds
    await events.visible_event(reader.session, event_id, viewer)
    rows = await seat_rows(reader.session, event_id)
    # Reads keep working without Redis, and at their usual speed: they just cannot show
    # holds while Redis fails, or for a moment after (the breaker).
    no_holds: dict[uuid.UUID, HeldSeat] = {}
    held, shown = await reader.redis_breaker.attempt(lambda: holds.held_seats(event_id), no_holds)
    viewer_id = viewer.id if viewer else None
    return SeatMapOut(event_id, shown, [_seat_out(seat, held, viewer_id) for seat in rows])


@post("/events", roles=STAFF, status_code=201)
async def create_event(
    data: JSONBody[EventCreate],
    principal: deps.Caller,
    db_session: deps.DbSession,
    settings: deps.Settings,
) -> CreatedEvent:
    """A draft with its price categories and seat map; answers every seat created."""
    view, seats = await events.create_event(
        db_session, principal, data, settings.max_seats_per_event
    )
    return CreatedEvent(**msgspec.structs.asdict(event_detail(view)), seats=seats)


@patch("/events/{event_id:uuid}", roles=STAFF, problems=(409,))
async def update_event(
    event_id: FromPath[uuid.UUID],
    data: JSONBody[EventChanges],
    principal: deps.Caller,
    db_session: deps.DbSession,
    settings: deps.Settings,
    holds: deps.Holds,
) -> EventDetail:
    """Changes an event (its organizer or an admin): details, status, price categories
    or seat map (not while seats are held or booked)."""

    async def seats_held() -> bool:
        return bool(await holds.held_seats(event_id))

    view = await events.update_event(
        db_session, event_id, principal, data, settings.max_seats_per_event, seats_held
    )
    if data.seat_map is not UNSET or data.price_categories is not UNSET:
        await best_effort(holds.forget_layout(event_id))
    return event_detail(view)


@delete("/events/{event_id:uuid}", roles=ADMINS, status_code=204, problems=(409,))
async def delete_event(
    event_id: FromPath[uuid.UUID], db_session: deps.DbSession, image_store: deps.Images
) -> None:
    """Only for events without bookings; the others are cancelled instead."""
    image_key = await events.delete_event(db_session, event_id)
    if image_key is not None:
        await image_store.remove(image_key)


@post(
    "/events/{event_id:uuid}/image",
    roles=STAFF,
    request_max_body_size=MAX_UPLOAD_BYTES,
    problems=(409, 415),
)
async def upload_image(
    event_id: FromPath[uuid.UUID],
    data: MultipartBody[ImageUpload],
    principal: deps.Caller,
    db_session: deps.DbSession,
    settings: deps.Settings,
    image_store: deps.Images,
) -> Response[ImageOut]:
    """Multipart upload of a JPEG, PNG or WebP image, recognised by its content."""
    event = await events.changeable_event(db_session, event_id, principal)
    content = await data.file.read()
    key = await images.set_event_image(
        db_session, event, content, image_store, settings.max_image_bytes
    )
    url = image_url(key)
    body = ImageOut(url, images.media_type(key), len(content))
    return Response(body, status_code=201, headers={"Location": url})


@get("/images/{key:str}", roles=PUBLIC)
async def get_image(
    key: Annotated[str, PathParameter(pattern=images.KEY_PATTERN)], image_store: deps.Images
) -> Response[bytes]:
    """An event's image, by the key its `image_url` names (immutable, cacheable for a
    year)."""
    # Every upload gets a new key, so what is served under a key never changes.
    return Response(
        await image_store.load(key),
        media_type=images.media_type(key),
        headers={"Cache-Control": IMAGE_CACHING, "X-Content-Type-Options": "nosniff"},
    )


events_router = Router(
    "/api",
    route_handlers=[
        list_events,
        get_event,
        get_seats,
        create_event,
        update_event,
        delete_event,
        upload_image,
        get_image,
    ],
    tags=["events"],
)
