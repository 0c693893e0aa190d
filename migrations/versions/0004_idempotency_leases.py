"""Idempotency records of work done between transactions carry a lease and what the work
made, so that a retry after a crash takes the key over instead of waiting a day.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_records", sa.Column("locked_until", sa.DateTime(timezone=True)))
    op.add_column("idempotency_records", sa.Column("resource_id", sa.Uuid()))
    # A record still being processed when this runs may belong to a request of the previous
    # version that is running right now: give it the default lease rather than none (a
    # record without a lease and without an answer may be taken over at once).
    op.execute(
        "UPDATE idempotency_records SET locked_until = now() + interval '30 seconds' "
        "WHERE response_status IS NULL"
    )


def downgrade() -> None:
    op.drop_column("idempotency_records", "resource_id")
    op.drop_column("idempotency_records", "locked_until")
