"""Accounts can be disabled and carry a token generation (raising it voids older access
tokens); refresh tokens remember the client they were issued to, for the sessions list.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

user_status = postgresql.ENUM("active", "disabled", name="user_status", create_type=False)


def upgrade() -> None:
    user_status.create(op.get_bind())
    op.add_column(
        "users", sa.Column("status", user_status, server_default="active", nullable=False)
    )
    op.add_column(
        "users", sa.Column("token_generation", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("refresh_tokens", sa.Column("client_address", sa.String(64)))
    op.add_column("refresh_tokens", sa.Column("user_agent", sa.String(300)))


def downgrade() -> None:
    op.drop_column("refresh_tokens", "user_agent")
    op.drop_column("refresh_tokens", "client_address")
    op.drop_column("users", "token_generation")
    op.drop_column("users", "status")
    user_status.drop(op.get_bind())
