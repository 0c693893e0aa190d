"""The PostgreSQL tables, as SQLAlchemy 2 models. Alembic reads `Base.metadata`."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Enum, ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Role(enum.StrEnum):
    USER = "USER"
    ORGANIZER = "ORGANIZER"
    ADMIN = "ADMIN"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), default=Role.USER)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RefreshToken(Base):
    """One issued refresh token. Tokens of one sign-in share a family; reuse revokes it."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EventStatus(enum.StrEnum):
    DRAFT = "draft"
    ON_SALE = "on_sale"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class SeatState(enum.StrEnum):
    AVAILABLE = "available"
    RESERVED = "reserved"
    SOLD = "sold"


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_status_starts_at", "status", "starts_at"),
        # The listing pages through events in (starts_at, id) order.
        Index("ix_events_starts_at_id", "starts_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(5000), default="")
    venue: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sale_starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sale_ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[EventStatus] = mapped_column(
        _enum(EventStatus, "event_status"), default=EventStatus.DRAFT
    )
    hold_ttl_seconds: Mapped[int] = mapped_column(default=600)
    max_hold_extensions: Mapped[int] = mapped_column(default=2)
    max_hold_lifetime_seconds: Mapped[int] = mapped_column(default=1800)
    max_seats_per_booking: Mapped[int] = mapped_column(default=10)
    payment_window_seconds: Mapped[int] = mapped_column(default=900)
    image_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PriceCategory(Base):
    __tablename__ = "price_categories"
    __table_args__ = (UniqueConstraint("event_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(80))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))


class Seat(Base):
    """One seat of an event. PostgreSQL's `state` is the truth about who owns a seat."""

    __tablename__ = "seats"
    __table_args__ = (
        UniqueConstraint("event_id", "section", "row", "number"),
        Index("ix_seats_event_state", "event_id", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    section: Mapped[str] = mapped_column(String(40))
    row: Mapped[str] = mapped_column(String(20))
    number: Mapped[int]
    # Indexed so that deleting a category checks its seats without scanning every seat.
    price_category_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("price_categories.id"), index=True
    )
    accessible: Mapped[bool] = mapped_column(default=False)
    state: Mapped[SeatState] = mapped_column(
        _enum(SeatState, "seat_state"), default=SeatState.AVAILABLE
    )
    # The booking that reserved or bought the seat; its foreign key comes with bookings.
    booking_id: Mapped[uuid.UUID | None]


class PaymentMethod(enum.StrEnum):
    CARD = "CARD"
    KHALTI = "KHALTI"
    ESEWA = "ESEWA"
