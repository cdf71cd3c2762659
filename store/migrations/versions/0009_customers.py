"""The web customer area: customers, the accounts they hold, web sessions, API tokens.

A customer signs in with an e-mail (kept trimmed and lower-cased, unique) and an Argon2id
password; role 'operator' marks the operators. `customer_accounts` links customers to
the SMPP accounts they hold. `web_sessions` and `api_tokens` keep only the SHA-256 of
their secrets. Every row of these tables goes with its customer (ON DELETE CASCADE),
and an ownership row with its account. New tables only: nothing existing is copied.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _customer_id() -> sa.Column:
    return sa.Column("customer_id", sa.Integer,
                     sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    # CHECK names are short: store.tables' naming convention (given to alembic by
    # env.py) makes ck_customers_role of "role", as store.tables declares it.
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("contact_email", sa.String(254), nullable=True),
        sa.Column("role", sa.String(16), nullable=False, server_default="customer"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("role IN ('customer', 'operator')", name="role"),
        sa.CheckConstraint("length(email) BETWEEN 3 AND 254", name="email_length"),
        sa.CheckConstraint("length(contact_email) <= 254", name="contact_email_length"),
    )
    op.create_table(
        "customer_accounts",
        _customer_id(),
        sa.Column("account_id", sa.Integer,
                  sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "account_id"),
    )
    op.create_index("ix_customer_accounts_account_id", "customer_accounts", ["account_id"])
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        _customer_id(),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_web_sessions_customer_id", "web_sessions", ["customer_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _customer_id(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 64", name="name_length"),
    )
    op.create_index("ix_api_tokens_customer_id", "api_tokens", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_customer_id", "api_tokens")
    op.drop_table("api_tokens")
    op.drop_index("ix_web_sessions_customer_id", "web_sessions")
    op.drop_table("web_sessions")
    op.drop_index("ix_customer_accounts_account_id", "customer_accounts")
    op.drop_table("customer_accounts")
    op.drop_table("customers")
