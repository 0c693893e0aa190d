"""Events, their price categories and seats.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

event_status = postgresql.ENUM(
    "draft", "on_sale", "closed", "cancelled", name="event_status", create_type=False
)
seat_state = postgresql.ENUM("available", "reserved", "sold", name="seat_state", create_type=False)


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _create_events() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("organizer_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.String(5000), nullable=False),
        sa.Column("venue", sa.String(200), nullable=False),
        _timestamp("starts_at"),
        _timestamp("ends_at"),
        _timestamp("sale_starts_at"),
        _timestamp("sale_ends_at"),
        sa.Column("status", event_status, nullable=False),
        sa.Column("hold_ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("max_hold_extensions", sa.Integer(), nullable=False),
        sa.Column("max_hold_lifetime_seconds", sa.Integer(), nullable=False),
        sa.Column("max_seats_per_booking", sa.Integer(), nullable=False),
        sa.Column("payment_window_seconds", sa.Integer(), nullable=False),
        sa.Column("image_key", sa.String(200)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index("ix_events_organizer_id", "events", ["organizer_id"])
    op.create_index("ix_events_status_starts_at", "events", ["status", "starts_at"])
    op.create_index("ix_events_starts_at_id", "events", ["starts_at", "id"])


def _create_price_categories() -> None:
    op.create_table(
        "price_categories",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "event_id", sa.Uuid(), sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.UniqueConstraint("event_id", "name"),
    )
    op.create_index("ix_price_categories_event_id", "price_categories", ["event_id"])


def _create_seats() -> None:
    op.create_table(
        "seats",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "event_id", sa.Uuid(), sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("section", sa.String(40), nullable=False),
        sa.Column("row", sa.String(20), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "price_category_id",
            sa.Uuid(),
            sa.ForeignKey("price_categories.id"),
            nullable=False,
        ),
        sa.Column("accessible", sa.Boolean(), nullable=False),
        sa.Column("state", seat_state, nullable=False),
        sa.Column("booking_id", sa.Uuid()),
        sa.UniqueConstraint("event_id", "section", "row", "number"),
    )
    op.create_index("ix_seats_event_state", "seats", ["event_id", "state"])
    op.create_index("ix_seats_price_category_id", "seats", ["price_category_id"])


def upgrade() -> None:
    event_status.create(op.get_bind())
    seat_state.create(op.get_bind())
    _create_events()
    _create_price_categories()
    _create_seats()


def downgrade() -> None:
    op.drop_table("seats")
    op.drop_table("price_categories")
    op.drop_table("events")
    seat_state.drop(op.get_bind())
    event_status.drop(op.get_bind())
