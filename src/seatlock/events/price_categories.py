"""Price categories of an event: a name, a price in minor units and one currency."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Annotated, Final

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.bodies import END, Body
from seatlock.errors import Conflict, InvalidInput
from seatlock.events.currencies import CURRENCIES
from seatlock.events.layouts import CategoryName
from seatlock.models import PriceCategory, Seat

MAX_CATEGORIES: Final = 50
# 10^12 minor units is 10 billion in a two-decimal currency: more than any ticket.
MAX_PRICE_MINOR: Final = 10**12


class CategoryIn(Body):
    name: CategoryName
    price_minor: Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE_MINOR)]
    currency: Annotated[
        str, msgspec.Meta(pattern=rf"^[A-Z]{{3}}{END}", description="ISO 4217 code")
    ]


Categories = Annotated[list[CategoryIn], msgspec.Meta(min_length=1, max_length=MAX_CATEGORIES)]


def check_categories(categories: list[CategoryIn]) -> None:
    names = [c.name for c in categories]
    if duplicate := next((n for n in names if names.count(n) > 1), None):
        raise InvalidInput(
            f"price_categories: {duplicate!r} is named twice", field="price_categories"
        )
    if unknown := next((c.currency for c in categories if c.currency not in CURRENCIES), None):
        raise InvalidInput(
            f"price_categories: {unknown!r} is not an ISO 4217 currency",
            field="price_categories",
        )
    # One currency per event: a booking's total is a sum of its seats' prices.
    if len({c.currency for c in categories}) > 1:
        raise InvalidInput(
            "price_categories: every category of an event has the same currency",
            field="price_categories",
        )


async def stored_categories(session: AsyncSession, event_id: uuid.UUID) -> list[PriceCategory]:
    rows = await session.scalars(
        select(PriceCategory)
        .where(PriceCategory.event_id == event_id)
        .order_by(PriceCategory.price_minor.desc(), PriceCategory.name)
    )
    return list(rows)


def add_categories(
    session: AsyncSession, event_id: uuid.UUID, categories: list[CategoryIn]
) -> dict[str, uuid.UUID]:
    added = [
        PriceCategory(
            id=uuid.uuid4(),
            event_id=event_id,
            name=c.name,
            price_minor=c.price_minor,
            currency=c.currency,
        )
        for c in categories
    ]
    session.add_all(added)
    return {c.name: c.id for c in added}


async def update_categories(
    session: AsyncSession, event_id: uuid.UUID, wanted: list[CategoryIn], *, frozen: bool
) -> dict[str, uuid.UUID]:
    """Adds the new categories and reprices the existing ones, answering the ids of the
    `wanted` ones (`remove_unlisted` drops the others). While seats are taken (`frozen`)
    the currency stays: prices already paid are in it."""
    stored = {c.name: c for c in await stored_categories(session, event_id)}
    currencies = {c.currency for c in stored.values()}
    if frozen and currencies and currencies != {c.currency for c in wanted}:
        raise Conflict("seats of this event are already taken, so its currency cannot change")
    for c in wanted:
        if (category := stored.get(c.name)) is not None:
            category.price_minor, category.currency = c.price_minor, c.currency
    added = add_categories(session, event_id, [c for c in wanted if c.name not in stored])
    return {c.name: stored[c.name].id if c.name in stored else added[c.name] for c in wanted}


async def remove_unlisted(
    session: AsyncSession, event_id: uuid.UUID, keep: Collection[str]
) -> None:
    """Deletes the categories not in `keep`, once no seat uses them any more."""
    unlisted = (PriceCategory.event_id == event_id, PriceCategory.name.not_in(keep))
    used = await session.scalar(
        select(PriceCategory.name)
        .join(Seat, Seat.price_category_id == PriceCategory.id)
        .where(Seat.event_id == event_id, *unlisted)
        .limit(1)
    )
    if used is not None:
        raise Conflict(
            f"price category {used!r} is still used by seats; give them another category "
            f"in the same request's seat_map",
        )
    await session.execute(delete(PriceCategory).where(*unlisted))
