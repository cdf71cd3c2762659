"""The store writer: messages carry their own outbox scheduling, and one debit per
account per commit pays for many messages.

upstream_attempts goes: its live rows (messages still ACCEPTED) move into the new
columns of messages, and every other ACCEPTED MT message gets its next_attempt_at, so
the claim query reads one table through one index (ix_messages_due, which also takes
over from ix_messages_status). messages.ledger_id and ledger.message_count tie a
per-commit debit to the messages it paid for.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

# Correlated subqueries rather than UPDATE ... FROM: the same text runs on both engines.
_FROM_ATTEMPTS = "(SELECT a.{column} FROM upstream_attempts a WHERE a.message_id = messages.id)"
_LIVE = (
    "status = 'ACCEPTED' AND direction = 'MT'"
    " AND id IN (SELECT message_id FROM upstream_attempts)"
)


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", TS, nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(64), nullable=True))
        batch.add_column(sa.Column("ledger_id", sa.BigInteger, nullable=True))
    with op.batch_alter_table("ledger") as batch:
        batch.add_column(sa.Column("message_count", sa.Integer, nullable=True))

    # Timestamps are copied as stored (SQLite's text keeps its format), never re-rendered.
    claimed = (
        "(SELECT CASE WHEN a.in_flight THEN a.claimed_by END FROM upstream_attempts a"
        " WHERE a.message_id = messages.id)"
    )
    op.execute(
        "UPDATE messages SET"
        f" attempts = {_FROM_ATTEMPTS.format(column='attempts')},"
        f" next_attempt_at = {_FROM_ATTEMPTS.format(column='next_attempt_at')},"
        f" claimed_by = {claimed},"
        f" last_error = {_FROM_ATTEMPTS.format(column='last_error')}"
        f" WHERE {_LIVE}"
    )
    # Waiting messages the outbox never touched are due when created (or scheduled).
    op.execute(
        "UPDATE messages SET next_attempt_at = COALESCE(schedule_at, created_at)"
        " WHERE status = 'ACCEPTED' AND direction = 'MT' AND next_attempt_at IS NULL"
    )
    op.drop_table("upstream_attempts")
    op.drop_index("ix_messages_status", "messages")
    op.create_index("ix_messages_due", "messages", ["status", "next_attempt_at"])


def downgrade() -> None:
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
    op.execute(
        "INSERT INTO upstream_attempts"
        " (message_id, attempts, in_flight, next_attempt_at, claimed_by, last_error)"
        " SELECT id, attempts, claimed_by IS NOT NULL, next_attempt_at, claimed_by, last_error"
        " FROM messages WHERE status = 'ACCEPTED' AND direction = 'MT'"
        " AND (attempts > 0 OR claimed_by IS NOT NULL OR last_error IS NOT NULL)"
    )
    op.drop_index("ix_messages_due", "messages")
    op.create_index("ix_messages_status", "messages", ["status"])
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("message_count")
    with op.batch_alter_table("messages") as batch:
        for name in ("ledger_id", "last_error", "claimed_by", "next_attempt_at", "attempts"):
            batch.drop_column(name)
