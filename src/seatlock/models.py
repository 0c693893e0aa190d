"""The PostgreSQL tables, as SQLAlchemy 2 models. Alembic reads `Base.metadata`."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Role(enum.StrEnum):
    USER = "USER"
    ORGANIZER = "ORGANIZER"
    ADMIN = "ADMIN"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class UserStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), default=Role.USER)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status: Mapped[UserStatus] = mapped_column(
        _enum(UserStatus, "user_status"), default=UserStatus.ACTIVE, server_default="active"
    )
    # Access tokens carry the generation they were issued in; raising it voids the older ones.
    token_generation: Mapped[int] = mapped_column(default=0, server_default="0")


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
    # Where the token was issued to, for the account's list of its sessions.
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


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
    # Raised by every change of the seat map or the price categories, so that the workers'
    # cached layouts notice the change with the event's other facts.
    seat_map_version: Mapped[int] = mapped_column(default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class EventQueue(Base):
    """An event's waiting room: who may join when, and how fast buyers are let in to shop.
    Who waits and who shops lives in Redis (`seatlock.queue`)."""

    __tablename__ = "event_queues"
    # The times PostgreSQL sets come back with each write (RETURNING), for the answer.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 (SQLAlchemy's own idiom)

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool]
    opens_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Either may be missing, not both: buyers let in per minute, buyers shopping at once.
    admit_per_minute: Mapped[int | None]
    max_shopping: Mapped[int | None]
    pass_seconds: Mapped[int]
    paused: Mapped[bool] = mapped_column(default=False, server_default="false")
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
    # The booking that reserved or bought the seat.
    booking_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bookings.id", name="fk_seats_booking_id"), index=True
    )


class PaymentMethod(enum.StrEnum):
    CARD = "CARD"
    KHALTI = "KHALTI"
    ESEWA = "ESEWA"


class BookingStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class PaymentStatus(enum.StrEnum):
    INITIATED = "initiated"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUND_REQUIRED = "refund_required"
    REFUNDED = "refunded"


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        Index("ix_bookings_user_created", "user_id", "created_at"),
        # The expiry sweep reads only unpaid bookings, soonest deadline first.
        Index(
            "ix_bookings_pending_deadline",
            "payment_deadline",
            postgresql_where=text("status = 'pending_payment'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    # One hold becomes at most one booking, whatever retries or races happen.
    hold_id: Mapped[str] = mapped_column(String(80), unique=True)
    # Kept after the seats are freed, so that a late payment can claim the same seats.
    seat_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid))
    status: Mapped[BookingStatus] = mapped_column(_enum(BookingStatus, "booking_status"))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    payment_deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("provider", "provider_reference"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id"), index=True)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    method: Mapped[PaymentMethod] = mapped_column(_enum(PaymentMethod, "payment_method"))
    provider: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(_enum(PaymentStatus, "payment_status"))
    provider_reference: Mapped[str | None] = mapped_column(String(200))
    # A sandbox checkout's address carries the return URL: no bound of its own.
    checkout_url: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    refund_reference: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ProviderNotification(Base):
    """A provider's webhook notification, kept so that a replay is recognised and ignored."""

    __tablename__ = "provider_notifications"

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    notification_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class IdempotencyRecord(Base):
    """The stored outcome of a request made with an Idempotency-Key, per user and route."""

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_expires", "expires_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    route: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_media_type: Mapped[str | None] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set while work that cannot share the key's transaction runs (a payment's provider
    # call): when its claim lapses, so that a retry after a crash may take the key over.
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What that work made in its first transaction (a payment), for a take-over to finish.
    resource_id: Mapped[uuid.UUID | None]
