"""Interop: addressing mode and outbind per account; what a message carries upstream;
segments the gateway splits; alert_notification requests.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("addressing", sa.String(8), nullable=False, server_default="lenient")
        )
        batch.add_column(sa.Column("outbind_address", sa.String(255), nullable=True))
        batch.add_column(sa.Column("outbind_system_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("outbind_password", sa.String(9), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("service_type", sa.String(6), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("protocol_id", sa.SmallInteger, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("priority_flag", sa.SmallInteger, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("tlvs", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("group_id", sa.BigInteger, nullable=True))
    op.create_index("ix_messages_group_id", "messages", ["group_id"])
    op.create_table(
        "message_parts",
        sa.Column("message_id", sa.BigInteger, nullable=False),
        sa.Column("part_no", sa.SmallInteger, nullable=False),
        sa.Column("parts", sa.SmallInteger, nullable=False),
        sa.Column("upstream", sa.String(64), nullable=True),
        sa.Column("upstream_id", sa.String(65), nullable=True),
        sa.Column("state", sa.SmallInteger, nullable=True),
        sa.Column("error_code", sa.Integer, nullable=True),
        sa.Column("done_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("message_id", "part_no", name="pk_message_parts"),
    )
    op.create_index(
        "ix_message_parts_upstream", "message_parts", ["upstream", "upstream_id"]
    )
    op.create_table(
        "alert_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("ms_addr", sa.String(21), nullable=False),
        sa.Column("ms_ton", sa.SmallInteger, nullable=False),
        sa.Column("ms_npi", sa.SmallInteger, nullable=False),
        sa.Column("esme_addr", sa.String(65), nullable=False),
        sa.Column("esme_ton", sa.SmallInteger, nullable=False),
        sa.Column("esme_npi", sa.SmallInteger, nullable=False),
        sa.Column("alerted_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_requests"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_alert_requests_account_id_accounts", ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "account_id", "ms_addr", "esme_addr",
            name="uq_alert_requests_account_id_ms_addr_esme_addr",
        ),
    )
    op.create_index("ix_alert_requests_ms_addr", "alert_requests", ["ms_addr"])


def downgrade() -> None:
    op.drop_table("alert_requests")
    op.drop_table("message_parts")
    op.drop_index("ix_messages_group_id", "messages")
    with op.batch_alter_table("messages") as batch:
        for name in ("group_id", "tlvs", "priority_flag", "protocol_id", "service_type"):
            batch.drop_column(name)
    with op.batch_alter_table("accounts") as batch:
        for name in ("outbind_password", "outbind_system_id", "outbind_address", "addressing"):
            batch.drop_column(name)
