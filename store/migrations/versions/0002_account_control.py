"""Account control: per-account limits, credit automation, senders, rates, STOP list.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

# Plain ADD COLUMN with a server default: SQLite does it in place, so the accounts
# table (referenced by ON DELETE CASCADE keys) is never copied and dropped.
def _account_columns() -> tuple[sa.Column, ...]:
    # Fresh Column objects on each call: a Column belongs to at most one table.
    return (
        sa.Column("window_size", sa.Integer, nullable=False, server_default="10"),
        sa.Column("throughput", sa.Float, nullable=False, server_default="20"),
        sa.Column("bind_limit", sa.Integer, nullable=False, server_default="1"),
        sa.Column("gsm_packed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("max_segments", sa.Integer, nullable=False, server_default="8"),
        sa.Column("keep_bodies", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("dlr_retention_days", sa.Integer, nullable=False, server_default="7"),
        sa.Column("stop_mode", sa.String(8), nullable=False, server_default="dlr"),
        sa.Column("auto_topup_threshold", sa.BigInteger, nullable=True),
        sa.Column("auto_topup_amount", sa.BigInteger, nullable=True),
        sa.Column("auto_topup_monthly_cap", sa.BigInteger, nullable=True),
        sa.Column("low_balance_threshold", sa.BigInteger, nullable=True),
    )


def upgrade() -> None:
    for column in _account_columns():
        op.add_column("accounts", column)
    op.create_table(
        "senders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("address", sa.String(21), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("comment", sa.String(255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_senders"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_senders_account_id_accounts", ondelete="CASCADE",
        ),
        sa.UniqueConstraint("account_id", "address", name="uq_senders_account_id_address"),
        sa.CheckConstraint(
            "kind IN ('alphanumeric', 'shortcode', 'numeric')", name="ck_senders_kind"
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'enabled', 'disabled', 'refused')", name="ck_senders_state"
        ),
    )
    op.create_table(
        "rates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, nullable=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("price", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rates"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_rates_account_id_accounts", ondelete="CASCADE",
        ),
        sa.CheckConstraint("price >= 0", name="ck_rates_price_not_negative"),
    )
    op.create_index("ix_rates_account_prefix", "rates", ["account_id", "prefix"])
    op.create_table(
        "stop_list",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("destination", sa.String(21), nullable=False),
        sa.Column("note", sa.String(255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stop_list"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_stop_list_account_id_accounts", ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "account_id", "destination", name="uq_stop_list_account_id_destination"
        ),
    )


def downgrade() -> None:
    for table in ("stop_list", "rates", "senders"):
        op.drop_table(table)
    with op.batch_alter_table("accounts") as batch:
        for column in reversed(_account_columns()):
            batch.drop_column(column.name)
