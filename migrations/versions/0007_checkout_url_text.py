"""A sandbox checkout's address carries the payment's return URL (up to 1,000 characters,
percent-encoded), so checkout URLs are no longer bounded by 1,000 characters.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("payments", "checkout_url", type_=sa.Text(), existing_type=sa.String(1000))


def downgrade() -> None:
    # Longer addresses are cut: a checkout page of an old payment cannot be opened anyway.
    op.alter_column(
        "payments",
        "checkout_url",
        type_=sa.String(1000),
        existing_type=sa.Text(),
        postgresql_using="left(checkout_url, 1000)",
    )
