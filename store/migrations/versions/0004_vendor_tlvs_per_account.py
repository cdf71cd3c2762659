"""Per-account vendor TLVs (0x1401 outgoing_id, 0x1402 incoming_id); joins 0002 and 0003.

Some clients (smpplib) refuse unknown TLV tags, so the provider's vendor TLVs are a
per-account choice, off unless the account or the gateway default turns them on.

Revision ID: 0004
Revises: 0002, 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = ("0002", "0003")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("vendor_tlvs", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("vendor_tlvs")
