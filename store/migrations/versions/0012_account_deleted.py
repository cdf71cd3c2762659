"""Soft delete of accounts: `accounts.deleted_at`, set by `smppgw admin account delete`.

The row stays (its messages, ledger and audit rows refer to it, and its system_id is
never given again); reads of the directory and of the operator skip it. A nullable
column added: nothing existing is copied.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("deleted_at", sa.DateTime(timezone=True),
                                        nullable=True))


def downgrade() -> None:
    # Both engines drop a plain column in place (SQLite since 3.35). Batch mode would
    # copy `accounts`, which the tables pointing at it forbid while foreign keys are on.
    op.execute("ALTER TABLE accounts DROP COLUMN deleted_at")
