"""Several nodes on one store: the nodes and their heartbeats, the sessions bound on each,
and deliveries claimed by the node that gives them to a receiver.

`nodes` has one row per node name (node-<node_id>), its heartbeat refreshed every few
seconds; a node whose heartbeat is older than the node TTL is gone, and its sessions
stop counting against bind limits. `bound_sessions` holds every bound session of every
node. `deliveries.claimed_by` names the node holding a delivery: its next_attempt_at is
then the end of the claim's lease, as for messages.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("node_id", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("smpp", sa.String(255), nullable=False, server_default=""),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("stopped_at", TS, nullable=True),
    )
    op.create_table(
        "bound_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("node", sa.String(32), nullable=False),
        sa.Column("account_id", sa.Integer,
                  sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("bind_type", sa.String(12), nullable=False),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("bound_at", TS, nullable=False),
        sa.CheckConstraint("bind_type IN ('transmitter', 'receiver', 'transceiver')",
                           name="bind_type"),
    )
    op.create_index("ix_bound_sessions_account", "bound_sessions", ["account_id"])
    op.create_index("ix_bound_sessions_node", "bound_sessions", ["node"])
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("claimed_by")
    op.drop_index("ix_bound_sessions_node", "bound_sessions")
    op.drop_index("ix_bound_sessions_account", "bound_sessions")
    op.drop_table("bound_sessions")
    op.drop_table("nodes")
