"""Initial schema: accounts, allowed_ips, ledger, messages, deliveries, audit_log.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the types of that day; a migration must not change when tables.py does.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("system_id", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("contact_email", sa.String(255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("system_id", name="uq_accounts_system_id"),
        sa.CheckConstraint("balance >= 0", name="ck_accounts_balance_not_negative"),
        sa.CheckConstraint("status IN ('active', 'suspended')", name="ck_accounts_status"),
    )
    op.create_table(
        "allowed_ips",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_allowed_ips"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_allowed_ips_account_id_accounts", ondelete="CASCADE",
        ),
        sa.UniqueConstraint("account_id", "network", name="uq_allowed_ips_account_id_network"),
    )
    op.create_table(
        "ledger",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.BigInteger, nullable=True),
        sa.Column("note", sa.String(255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_ledger_account_id_accounts"
        ),
    )
    op.create_index("ix_ledger_account_id", "ledger", ["account_id"])
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("direction", sa.String(2), nullable=False),
        sa.Column("source_addr", sa.String(21), nullable=False),
        sa.Column("source_ton", sa.SmallInteger, nullable=False),
        sa.Column("source_npi", sa.SmallInteger, nullable=False),
        sa.Column("dest_addr", sa.String(21), nullable=False),
        sa.Column("dest_ton", sa.SmallInteger, nullable=False),
        sa.Column("dest_npi", sa.SmallInteger, nullable=False),
        sa.Column("esm_class", sa.SmallInteger, nullable=False),
        sa.Column("registered_delivery", sa.SmallInteger, nullable=False),
        sa.Column("data_coding", sa.SmallInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=True),
        sa.Column("segments", sa.SmallInteger, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.Integer, nullable=True),
        sa.Column("upstream", sa.String(64), nullable=True),
        sa.Column("upstream_id", sa.String(65), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("done_at", TS, nullable=True),
        sa.Column("schedule_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_messages_account_id_accounts"
        ),
        sa.CheckConstraint("direction IN ('MT', 'MO')", name="ck_messages_direction"),
    )
    op.create_index("ix_messages_account_created", "messages", ["account_id", "created_at"])
    op.create_index("ix_messages_status", "messages", ["status"])
    op.create_index("ix_messages_upstream", "messages", ["upstream", "upstream_id"])
    op.create_table(
        "deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("message_id", sa.BigInteger, nullable=True),
        sa.Column("kind", sa.String(3), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.String(12), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_deliveries_account_id_accounts"
        ),
        sa.CheckConstraint("kind IN ('dlr', 'mo')", name="ck_deliveries_kind"),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'expired')", name="ck_deliveries_state"
        ),
    )
    op.create_index(
        "ix_deliveries_due", "deliveries", ["state", "account_id", "next_attempt_at"]
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=True),
        sa.Column("before", sa.Text, nullable=True),
        sa.Column("after", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )


def downgrade() -> None:
    for table in ("audit_log", "deliveries", "messages", "ledger", "allowed_ips", "accounts"):
        op.drop_table(table)
