"""Events: creation with their seat map, details, changes, status and deletion.

Who sees what: a draft is seen by its organizer and by admins only, and is "not found"
for everybody else. Every other status is public; a cancelled event stays visible so
that its buyers can see what became of their tickets. Only the organizer who owns an
event, or an admin, may change it; to other organizers it is "not found" as well.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Final, NamedTuple

import msgspec
from msgspec import UNSET, UnsetType
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.tokens import Principal
from seatlock.bodies import Body
from seatlock.errors import Conflict, Forbidden, InvalidInput, NotFound
from seatlock.events import layouts, seatmaps
from seatlock.events import price_categories as categories
from seatlock.events.layouts import SeatMap
from seatlock.events.price_categories import Categories
from seatlock.events.seatmaps import SeatRow
from seatlock.models import Booking, Event, EventStatus, PriceCategory, Role, Seat, SeatState

Moment = Annotated[datetime, msgspec.Meta(tz=True, description="with a time zone offset")]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
Description = Annotated[str, msgspec.Meta(max_length=5000)]
Venue = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
HoldTtl = Annotated[int, msgspec.Meta(ge=30, le=3600)]
HoldExtensions = Annotated[int, msgspec.Meta(ge=0, le=10)]
HoldLifetime = Annotated[int, msgspec.Meta(ge=30, le=14_400)]
SeatsPerBooking = Annotated[int, msgspec.Meta(ge=1, le=100)]
PaymentWindow = Annotated[int, msgspec.Meta(ge=60, le=86_400)]

# Organizers may let a buyer take up to this many seats at once; only admins go higher.
ORGANIZER_SEATS_PER_BOOKING: Final = 10

# Status changes an organizer may ask for. A cancelled event is final: its bookings
# are being refunded. Nothing goes back to draft, since buyers may already hold tickets.
TRANSITIONS: Final = {
    EventStatus.DRAFT: {EventStatus.ON_SALE, EventStatus.CANCELLED},
    EventStatus.ON_SALE: {EventStatus.CLOSED, EventStatus.CANCELLED},
    EventStatus.CLOSED: {EventStatus.ON_SALE, EventStatus.CANCELLED},
    EventStatus.CANCELLED: set(),
}


class EventCreate(Body, kw_only=True):
    title: Title
    description: Description = ""
    venue: Venue
    starts_at: Moment
    ends_at: Moment
    sale_starts_at: Moment
    sale_ends_at: Moment
    hold_ttl_seconds: HoldTtl = 600
    max_hold_extensions: HoldExtensions = 2
    max_hold_lifetime_seconds: HoldLifetime = 1800
    max_seats_per_booking: SeatsPerBooking = ORGANIZER_SEATS_PER_BOOKING
    payment_window_seconds: PaymentWindow = 900
    price_categories: Categories
    seat_map: SeatMap


class EventChanges(Body, kw_only=True):
    """A partial update: absent fields stay as they are. `price_categories` and
    `seat_map`, when given, describe the whole new list and the whole new map."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    venue: Venue | UnsetType = UNSET
    starts_at: Moment | UnsetType = UNSET
    ends_at: Moment | UnsetType = UNSET
    sale_starts_at: Moment | UnsetType = UNSET
    sale_ends_at: Moment | UnsetType = UNSET
    hold_ttl_seconds: HoldTtl | UnsetType = UNSET
    max_hold_extensions: HoldExtensions | UnsetType = UNSET
    max_hold_lifetime_seconds: HoldLifetime | UnsetType = UNSET
    max_seats_per_booking: SeatsPerBooking | UnsetType = UNSET
    payment_window_seconds: PaymentWindow | UnsetType = UNSET
    status: EventStatus | UnsetType = UNSET
    price_categories: Categories | UnsetType = UNSET
    seat_map: SeatMap | UnsetType = UNSET


# The fields both bodies copy onto the event as they are.
DETAIL_FIELDS: Final = tuple(
    name for name in EventCreate.__struct_fields__ if name not in {"price_categories", "seat_map"}
)


class EventView(NamedTuple):
    event: Event
    categories: list[PriceCategory]
    seat_counts: dict[SeatState, int]


def may_manage(event: Event, principal: Principal | None) -> bool:
    if principal is None:
        return False
    return principal.role is Role.ADMIN or event.organizer_id == principal.id


async def _find(session: AsyncSession, event_id: uuid.UUID, *, lock: bool = False) -> Event:
    # Locking re-reads the row, so that changes are made to its newest version.
    event = await session.get(Event, event_id, with_for_update=lock, populate_existing=lock)
    if event is None:
        raise NotFound("no such event")
    return event


async def visible_event(
    session: AsyncSession, event_id: uuid.UUID, viewer: Principal | None
) -> Event:
    event = await _find(session, event_id)
    if event.status is EventStatus.DRAFT and not may_manage(event, viewer):
        raise NotFound("no such event")
    return event


async def managed_event(
    session: AsyncSession, event_id: uuid.UUID, principal: Principal, *, lock: bool = False
) -> Event:
    """The event, for its organizer or an admin; locked for the transaction if asked."""
    event = await _find(session, event_id, lock=lock)
    if not may_manage(event, principal):
        raise NotFound("no such event")
    return event


async def changeable_event(
    session: AsyncSession, event_id: uuid.UUID, principal: Principal
) -> Event:
    event = await managed_event(session, event_id, principal, lock=True)
    if event.status is EventStatus.CANCELLED:
        raise Conflict("the event is cancelled and can no longer be changed")
    return event


async def event_view(session: AsyncSession, event: Event) -> EventView:
    # Reloaded: the database sets updated_at and turns times into UTC.
    await session.refresh(event)
    return EventView(
        event,
        await categories.stored_categories(session, event.id),
        await seatmaps.seat_counts(session, event.id),
    )


async def has_bookings(session: AsyncSession, event_id: uuid.UUID) -> bool:
    """Whether any booking, live or not, refers to the event, which then can be cancelled
    but not deleted: its bookings are kept for refunds."""
    booked = select(Booking.id).where(Booking.event_id == event_id)
    return bool(await session.scalar(select(booked.exists())))


async def seat_map_frozen(session: AsyncSession, event_id: uuid.UUID, seats_held: bool) -> bool:
    """Whether the seat map may only grow: some seat is held (in Redis), reserved or sold."""
    return seats_held or await seatmaps.any_seat_taken(session, event_id)


def _check_schedule(event: Event) -> None:
    rules = (
        (event.ends_at > event.starts_at, "ends_at", "the event must end after it starts"),
        (
            event.sale_ends_at > event.sale_starts_at,
            "sale_ends_at",
            "the sale must end after it starts",
        ),
        (
            event.sale_ends_at <= event.ends_at,
            "sale_ends_at",
            "the sale must end by the time the event ends",
        ),
        (
            event.max_hold_lifetime_seconds >= event.hold_ttl_seconds,
            "max_hold_lifetime_seconds",
            "a hold's whole lifetime must be at least one hold TTL",
        ),
    )
    for holds, field, detail in rules:
        if not holds:
            raise InvalidInput(f"{field}: {detail}", field=field)


def _check_not_over(event: Event) -> None:
    if event.ends_at <= datetime.now(UTC):
        raise InvalidInput("ends_at: the event is already over", field="ends_at")


def _check_seats_per_booking(value: int, principal: Principal) -> None:
    if value > ORGANIZER_SEATS_PER_BOOKING and principal.role is not Role.ADMIN:
        raise Forbidden(
            f"max_seats_per_booking: only an admin may allow more than "
            f"{ORGANIZER_SEATS_PER_BOOKING} seats per booking",
            field="max_seats_per_booking",
        )


async def create_event(
    session: AsyncSession, principal: Principal, data: EventCreate, max_seats: int
) -> tuple[EventView, list[SeatRow]]:
    """A new draft with its price categories and every seat of its map."""
    _check_seats_per_booking(data.max_seats_per_booking, principal)
    event = Event(id=uuid.uuid4(), organizer_id=principal.id, status=EventStatus.DRAFT)
    for name in DETAIL_FIELDS:
        setattr(event, name, getattr(data, name))
    _check_schedule(event)
    _check_not_over(event)
    categories.check_categories(data.price_categories)
    plan = layouts.plan_seats(data.seat_map, [c.name for c in data.price_categories], max_seats)
    session.add(event)
    await session.flush()
    category_ids = categories.add_categories(session, event.id, data.price_categories)
    seats = await seatmaps.insert_seats(session, event.id, plan, category_ids)
    await session.commit()
    await seatmaps.refresh_statistics(session, len(seats))
    return await event_view(session, event), seats


async def _change_seating(
    session: AsyncSession, event: Event, changes: EventChanges, max_seats: int, seats_held: bool
) -> None:
    frozen = await seat_map_frozen(session, event.id, seats_held)
    wanted = changes.price_categories
    if isinstance(wanted, UnsetType):
        stored = await categories.stored_categories(session, event.id)
        category_ids = {c.name: c.id for c in stored}
    else:
        categories.check_categories(wanted)
        category_ids = await categories.update_categories(session, event.id, wanted, frozen=frozen)
    if not isinstance(changes.seat_map, UnsetType):
        plan = layouts.plan_seats(changes.seat_map, category_ids, max_seats)
        await seatmaps.replace_seats(session, event.id, plan, category_ids, grow_only=frozen)
    if not isinstance(wanted, UnsetType):
        await categories.remove_unlisted(session, event.id, category_ids)
    # Counted even when the new map equals the old one: cached layouts are re-read, and
    # being derived from their content, keep their version.
    event.seat_map_version += 1


def _change_status(event: Event, status: EventStatus) -> None:
    if status is event.status:
        return
    if status not in TRANSITIONS[event.status]:
        raise Conflict(
            f"status: an event that is {event.status.value} cannot become {status.value}",
            field="status",
        )
    if status is EventStatus.ON_SALE:
        _check_not_over(event)
    event.status = status


async def update_event(
    session: AsyncSession,
    event_id: uuid.UUID,
    principal: Principal,
    changes: EventChanges,
    max_seats: int,
    seats_held: Callable[[], Awaitable[bool]],
) -> EventView:
    """`seats_held` says whether Redis holds any seat of the event; it is asked only when
    the seat map or its categories change."""
    event = await changeable_event(session, event_id, principal)
    wanted = changes.max_seats_per_booking
    if not isinstance(wanted, UnsetType) and wanted != event.max_seats_per_booking:
        _check_seats_per_booking(wanted, principal)
    for name in DETAIL_FIELDS:
        if (value := getattr(changes, name)) is not UNSET:
            setattr(event, name, value)
    _check_schedule(event)
    if changes.price_categories is not UNSET or changes.seat_map is not UNSET:
        await _change_seating(session, event, changes, max_seats, await seats_held())
    if not isinstance(changes.status, UnsetType):
        _change_status(event, changes.status)
    await session.commit()
    return await event_view(session, event)


async def delete_event(session: AsyncSession, event_id: uuid.UUID) -> str | None:
    """Deletes an event that has no bookings; answers the key of its image, if any."""
    event = await _find(session, event_id, lock=True)
    refusal = "the event has bookings: cancel it instead, which keeps them for refunds"
    if await has_bookings(session, event_id):
        raise Conflict(refusal)
    await session.execute(
        delete(Seat).where(Seat.event_id == event_id, Seat.state == SeatState.AVAILABLE)
    )
    # A seat reserved since the check survives the delete above, and stops this one.
    if await session.scalar(select(select(Seat.id).where(Seat.event_id == event_id).exists())):
        raise Conflict(refusal)
    image_key = event.image_key
    await session.delete(event)
    await session.commit()
    return image_key
