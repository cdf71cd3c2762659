"""Upstreams and routes as data: the connectors and the routing table an operator
changes at run time (`smppgw admin upstream|route`). New tables only; the config file's
[[upstreams]] / [[routes]] fill them on the first start that finds them empty.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "upstreams",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 64", name="name_length"),
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prefix", sa.String(16), nullable=False, server_default=""),
        sa.Column("account", sa.String(64), nullable=False, server_default=""),
        sa.Column("connectors", sa.String(1024), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("prefix", "account"),
        sa.CheckConstraint("length(prefix) <= 16", name="prefix_length"),
        sa.CheckConstraint("length(account) <= 64", name="account_length"),
        sa.CheckConstraint("length(connectors) BETWEEN 1 AND 1024", name="connectors_length"),
    )


def downgrade() -> None:
    op.drop_table("routes")
    op.drop_table("upstreams")
