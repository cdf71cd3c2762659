"""Delivery pipeline: outbox scheduling (upstream_attempts) and per-account inbound numbers.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "upstream_attempts",
        sa.Column("message_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("in_flight", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("message_id", name="pk_upstream_attempts"),
    )
    op.create_table(
        "inbound_numbers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("number", sa.String(21), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_numbers"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_inbound_numbers_account_id_accounts", ondelete="CASCADE",
        ),
        sa.UniqueConstraint("number", name="uq_inbound_numbers_number"),
    )
    op.create_index("ix_inbound_numbers_account_id", "inbound_numbers", ["account_id"])


def downgrade() -> None:
    op.drop_table("inbound_numbers")
    op.drop_table("upstream_attempts")
