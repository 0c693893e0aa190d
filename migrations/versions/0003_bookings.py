"""Bookings, payments, provider notifications and idempotency records.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

booking_status = postgresql.ENUM(
    "pending_payment", "confirmed", "cancelled", "expired", name="booking_status", create_type=False
)
payment_status = postgresql.ENUM(
    "initiated",
    "succeeded",
    "failed",
    "refund_required",
    "refunded",
    name="payment_status",
    create_type=False,
)
payment_method = postgresql.ENUM(
    "CARD", "KHALTI", "ESEWA", name="payment_method", create_type=False
)
ENUMS = (booking_status, payment_status, payment_method)


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def _create_bookings() -> None:
    op.create_table(
        "bookings",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("event_id", sa.Uuid(), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("hold_id", sa.String(80), nullable=False, unique=True),
        sa.Column("seat_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("status", booking_status, nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_deadline", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
    )
    op.create_index("ix_bookings_event_id", "bookings", ["event_id"])
    op.create_index("ix_bookings_user_created", "bookings", ["user_id", "created_at"])
    op.create_index(
        "ix_bookings_pending_deadline",
        "bookings",
        ["payment_deadline"],
        postgresql_where=sa.text("status = 'pending_payment'"),
    )
    op.create_foreign_key("fk_seats_booking_id", "seats", "bookings", ["booking_id"], ["id"])
    op.create_index("ix_seats_booking_id", "seats", ["booking_id"])


def _create_payments() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("booking_id", sa.Uuid(), sa.ForeignKey("bookings.id"), nullable=False),
        sa.Column("event_id", sa.Uuid(), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("method", payment_method, nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", payment_status, nullable=False),
        sa.Column("provider_reference", sa.String(200)),
        sa.Column("checkout_url", sa.String(1000)),
        sa.Column("failure_reason", sa.String(200)),
        sa.Column("refund_reference", sa.String(200)),
        *_timestamps(),
        sa.UniqueConstraint("provider", "provider_reference"),
    )
    op.create_index("ix_payments_booking_id", "payments", ["booking_id"])


def _create_records() -> None:
    op.create_table(
        "provider_notifications",
        sa.Column("provider", sa.String(20), primary_key=True),
        sa.Column("notification_id", sa.String(200), primary_key=True),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "idempotency_records",
        sa.Column(
            "user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("route", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer()),
        sa.Column("response_body", sa.LargeBinary()),
        sa.Column("response_media_type", sa.String(100)),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_idempotency_expires", "idempotency_records", ["expires_at"])


def upgrade() -> None:
    for enum in ENUMS:
        enum.create(op.get_bind())
    _create_bookings()
    _create_payments()
    _create_records()


def downgrade() -> None:
    op.drop_table("idempotency_records")
    op.drop_table("provider_notifications")
    op.drop_table("payments")
    op.drop_index("ix_seats_booking_id", "seats")
    op.drop_constraint("fk_seats_booking_id", "seats", type_="foreignkey")
    op.drop_table("bookings")
    for enum in ENUMS:
        enum.drop(op.get_bind())
