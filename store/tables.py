"""The schema, declared once as SQLAlchemy Core tables on one MetaData.

Alembic migrations in store/migrations create exactly these tables; tests compare
the migrated database against `metadata` on SQLite and PostgreSQL, CHECK constraints
included. Every timestamp column is `UTCDateTime`: aware UTC in, aware UTC out, on both
engines. SQLite enforces neither VARCHAR(n) nor BIGINT's range, so the texts operators
write and the money columns carry CHECKs (migration 0007) besides the repositories'
own checks (store.bounds, store.money).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from store.money import MAX_AMOUNT, MAX_STORED

# Deterministic constraint names, so later migrations can refer to them on both engines.
# Migrations 0001 and 0002 had alembic apply the "ck" convention to names already
# complete, so their CHECKs are ck_accounts_ck_accounts_status and so on in every
# database; a migration dropping one of those must use that name.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only autoincrements an INTEGER PRIMARY KEY (the rowid alias), not BIGINT.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ACCOUNT_STATUSES = ("active", "suspended")
# 'reprice' is replace_sm's change of a waiting message's price: negative when it costs
# more segments, positive (a refund) when fewer. A message's debit plus its reprice
# rows always equal its cost.
LEDGER_KINDS = (
    "topup", "debit", "refund", "transfer_in", "transfer_out", "auto_topup", "adjust",
    "reprice",
)
MESSAGE_STATUSES = (
    "ACCEPTED", "ENROUTE", "DELIVERED", "UNDELIVERABLE", "EXPIRED", "REJECTED", "DELETED",
    "UNKNOWN",
)
DELIVERY_KINDS = ("dlr", "mo")
DELIVERY_STATES = ("pending", "delivered", "expired")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """TIMESTAMP WITH TIME ZONE that only accepts and always returns aware UTC.

    SQLite has no time zone type and hands back naive values; storing every value as
    UTC and re-attaching UTC on the way out makes both engines behave the same, and
    keeps SQLite's text timestamps comparable as strings.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _length(column: str, most: int, *, least: int = 0) -> sa.CheckConstraint:
    """length(column) within bounds; NULL passes, as in every CHECK."""
    rule = f"length({column}) <= {most}" if least == 0 else (
        f"length({column}) BETWEEN {least} AND {most}"
    )
    return sa.CheckConstraint(rule, name=f"{column}_length")


def _range(column: str, least: int, most: int) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"{column} BETWEEN {least} AND {most}", name=f"{column}_range")


accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("system_id", sa.String(16), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    # Minor units (see store.money). The CHECK is the last line of defence: conditional
    # updates already keep it from going negative.
    sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("contact_email", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    # Per-account limits (migration 0002); new accounts take the configured defaults.
    sa.Column("window_size", sa.Integer, nullable=False, server_default="10"),
    sa.Column("throughput", sa.Float, nullable=False, server_default="20"),
    sa.Column("bind_limit", sa.Integer, nullable=False, server_default="1"),
    sa.Column("gsm_packed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("max_segments", sa.Integer, nullable=False, server_default="8"),
    sa.Column("keep_bodies", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("vendor_tlvs", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("dlr_retention_days", sa.Integer, nullable=False, server_default="7"),
    # 'dlr' accepts a submit to a STOP-listed number and fails it (PTT 53); 'refuse'
    # answers the submit with an error.
    sa.Column("stop_mode", sa.String(8), nullable=False, server_default="dlr"),
    # Minor units; NULL = feature off.
    sa.Column("auto_topup_threshold", sa.BigInteger, nullable=True),
    sa.Column("auto_topup_amount", sa.BigInteger, nullable=True),
    sa.Column("auto_topup_monthly_cap", sa.BigInteger, nullable=True),
    sa.Column("low_balance_threshold", sa.BigInteger, nullable=True),
    # Migration 0005. 'lenient' takes any source TON/NPI for an exact enabled sender and
    # normalises it; 'strict' refuses what does not fit the sender's kind exactly.
    sa.Column("addressing", sa.String(8), nullable=False, server_default="lenient"),
    # Where the gateway sends outbind when receipts wait and no receiver is bound
    # ("host:port"), and the system_id/password it presents there. The password is the
    # gateway's own credential towards the ESME, so it is kept readable.
    sa.Column("outbind_address", sa.String(255), nullable=True),
    sa.Column("outbind_system_id", sa.String(16), nullable=True),
    sa.Column("outbind_password", sa.String(9), nullable=True),
    # Migration 0012: set by `account delete`, a soft delete. The row stays for its
    # history, ledger and audit (its system_id is never given again); the directory and
    # every account read of the operator no longer see it.
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.CheckConstraint("balance >= 0", name="balance_not_negative"),
    sa.CheckConstraint("status IN ('active', 'suspended')", name="status"),
    # Migration 0007. Operators keep balances within store.money.MAX_AMOUNT; the
    # schema's bound is higher so that refunds to a full account never fail a commit.
    sa.CheckConstraint(f"balance <= {MAX_STORED}", name="balance_max"),
    sa.CheckConstraint("stop_mode IN ('dlr', 'refuse')", name="stop_mode"),
    sa.CheckConstraint("addressing IN ('lenient', 'strict')", name="addressing"),
    _range("auto_topup_threshold", 0, MAX_AMOUNT),
    _range("auto_topup_amount", 0, MAX_AMOUNT),
    _range("auto_topup_monthly_cap", 0, MAX_AMOUNT),
    _range("low_balance_threshold", 0, MAX_AMOUNT),
    _length("system_id", 16, least=1),
    _length("contact_email", 255),
    _length("outbind_address", 255),
    _length("outbind_system_id", 16),
    _length("outbind_password", 9),
)

allowed_ips = sa.Table(
    "allowed_ips",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Canonical text of an address or CIDR as ipaddress.ip_network prints it.
    sa.Column("network", sa.String(64), nullable=False),
    sa.UniqueConstraint("account_id", "network"),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    # Signed: credits positive, debits negative; a balance is the sum of its ledger.
    sa.Column("amount", sa.BigInteger, nullable=False),
    # Set on the rows written one per message (refunds, reprices, and debits written
    # before migration 0006). The store writer debits once per account per commit: that
    # row has no message_id, its messages point at it (messages.ledger_id), and
    # message_count says how many did, so a purge of some of them is told apart from
    # a debit that does not match its messages (store.invariants).
    sa.Column("message_id", sa.BigInteger, nullable=True),
    sa.Column("note", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("message_count", sa.Integer, nullable=True),
    sa.Index("ix_ledger_account_id", "account_id"),
    # Migration 0007.
    _range("amount", -MAX_STORED, MAX_STORED),
    _length("note", 255),
)

messages = sa.Table(
    "messages",
    metadata,
    # Supplied by the gateway (a 64-bit snowflake); the SMPP message_id is str(id).
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
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
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("done_at", UTCDateTime, nullable=True),
    sa.Column("schedule_at", UTCDateTime, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    # Migration 0005: what the client set that goes upstream with the message.
    sa.Column("service_type", sa.String(6), nullable=False, server_default=""),
    sa.Column("protocol_id", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("priority_flag", sa.SmallInteger, nullable=False, server_default="0"),
    # The client's optional parameters (sar_*, ports, set_dpf, vendor tags...) as their
    # wire encoding; message_payload is not among them (its bytes are `body`).
    sa.Column("tlvs", sa.LargeBinary, nullable=True),
    # submit_multi: the one message_id the client holds for every destination's row.
    sa.Column("group_id", sa.BigInteger, nullable=True),
    # Migration 0006: the outbox's scheduling, on the message itself. An ACCEPTED MT
    # row always has next_attempt_at: when it is due (created_at or schedule_at for a
    # new one, the end of the lease while claimed_by holds it, the back-off after a
    # temporary error). A claim is live while claimed_by is set and next_attempt_at has
    # not passed, so a crashed node's claims come back by themselves.
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("last_error", sa.String(64), nullable=True),
    # The ledger row that paid for this message: the store writer's one debit per
    # account per commit (NULL for free messages and rows written before 0006).
    sa.Column("ledger_id", sa.BigInteger, nullable=True),
    sa.CheckConstraint("direction IN ('MT', 'MO')", name="direction"),
    sa.Index("ix_messages_account_created", "account_id", "created_at"),
    # The outbox's claim reads ACCEPTED rows in next_attempt_at order; the index also
    # serves every lookup by status alone (it replaced ix_messages_status in 0006).
    sa.Index("ix_messages_due", "status", "next_attempt_at"),
    sa.Index("ix_messages_upstream", "upstream", "upstream_id"),
    sa.Index("ix_messages_group_id", "group_id"),
)

# Migration 0005. The segments of a message the gateway split for its upstream: each
# has its own upstream id and outcome; the message is final when every part is.
message_parts = sa.Table(
    "message_parts",
    metadata,
    sa.Column("message_id", sa.BigInteger, nullable=False),
    sa.Column("part_no", sa.SmallInteger, nullable=False),
    sa.Column("parts", sa.SmallInteger, nullable=False),
    sa.Column("upstream", sa.String(64), nullable=True),
    sa.Column("upstream_id", sa.String(65), nullable=True),
    # SMPP message_state of this part once its receipt came (NULL until then).
    sa.Column("state", sa.SmallInteger, nullable=True),
    sa.Column("error_code", sa.Integer, nullable=True),
    sa.Column("done_at", UTCDateTime, nullable=True),
    sa.PrimaryKeyConstraint("message_id", "part_no"),
    sa.Index("ix_message_parts_upstream", "upstream", "upstream_id"),
)

# Migration 0005. A message failed because the subscriber was absent and its submit
# asked for set_dpf: when the upstream says the subscriber is back (alert_notification),
# the account's receiver is told (SMPP 3.4 section 4.12).
alert_requests = sa.Table(
    "alert_requests",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("ms_addr", sa.String(21), nullable=False),
    sa.Column("ms_ton", sa.SmallInteger, nullable=False),
    sa.Column("ms_npi", sa.SmallInteger, nullable=False),
    sa.Column("esme_addr", sa.String(65), nullable=False),
    sa.Column("esme_ton", sa.SmallInteger, nullable=False),
    sa.Column("esme_npi", sa.SmallInteger, nullable=False),
    # Set once the upstream reported the subscriber back; cleared rows are deleted
    # when a receiver took the alert_notification.
    sa.Column("alerted_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("account_id", "ms_addr", "esme_addr"),
    sa.Index("ix_alert_requests_ms_addr", "ms_addr"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("message_id", sa.BigInteger, nullable=True),
    sa.Column("kind", sa.String(3), nullable=False),
    # An encoded deliver_sm body produced by the gateway; opaque to the store.
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.String(12), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    # The node giving it to a receiver (several nodes); its next_attempt_at is then the
    # end of that claim's lease.
    sa.Column("claimed_by", sa.String(32), nullable=True),
    sa.CheckConstraint("kind IN ('dlr', 'mo')", name="kind"),
    sa.CheckConstraint("state IN ('pending', 'delivered', 'expired')", name="state"),
    sa.Index("ix_deliveries_due", "state", "account_id", "next_attempt_at"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(64), nullable=True),
    sa.Column("before", sa.Text, nullable=True),  # JSON
    sa.Column("after", sa.Text, nullable=True),  # JSON
)

# --- delivery pipeline (migration 0003) ------------------------------------------------

INBOUND_KINDS = ("exact", "prefix", "range")

# Numbers (MSISDNs, short codes), prefixes and ranges whose MO messages belong to an
# account (kinds and ranges: migration 0010). `number` is the exact number, the prefix
# or the range's first number; `range_end` the range's last, of the same length.
# Entries of two accounts never overlap: store.inbound checks it under a lock, as no
# constraint of both engines can.
inbound_numbers = sa.Table(
    "inbound_numbers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("number", sa.String(21), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False, server_default="exact"),
    sa.Column("range_end", sa.String(21), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Index("ix_inbound_numbers_account_id", "account_id"),
    sa.Index("ix_inbound_numbers_number", "number"),
    sa.CheckConstraint("kind IN ('exact', 'prefix', 'range')", name="kind"),
    sa.CheckConstraint(
        "(kind = 'range' AND range_end IS NOT NULL AND length(range_end) = length(number)"
        " AND range_end >= number)"
        " OR (kind <> 'range' AND range_end IS NULL)",
        name="range_end",
    ),
)

# --- account control (migration 0002) ------------------------------------------------

SENDER_KINDS = ("alphanumeric", "shortcode", "numeric")
SENDER_STATES = ("pending", "enabled", "disabled", "refused")
STOP_MODES = ("dlr", "refuse")
ADDRESSING_MODES = ("lenient", "strict")

senders = sa.Table(
    "senders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("address", sa.String(21), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("comment", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    sa.UniqueConstraint("account_id", "address"),
    sa.CheckConstraint("kind IN ('alphanumeric', 'shortcode', 'numeric')", name="kind"),
    sa.CheckConstraint("state IN ('pending', 'enabled', 'disabled', 'refused')", name="state"),
    # Migration 0007.
    _length("address", 21, least=1),
    _length("comment", 255),
)

# Price per segment for destinations starting with `prefix`, in minor units. A NULL
# account_id is the global table; a row with an account is that account's override.
# Uniqueness of (account_id, prefix) is kept by store.rates: NULLs never collide in a
# unique constraint on either engine.
rates = sa.Table(
    "rates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=True,
    ),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("price", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    sa.CheckConstraint("price >= 0", name="price_not_negative"),
    sa.Index("ix_rates_account_prefix", "account_id", "prefix"),
    # Migration 0007.
    sa.CheckConstraint(f"price <= {MAX_AMOUNT}", name="price_max"),
    _length("prefix", 16, least=1),
)

# Destinations an account may not message (the recipient sent STOP, or the operator
# said so).
stop_list = sa.Table(
    "stop_list",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("destination", sa.String(21), nullable=False),
    sa.Column("note", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.UniqueConstraint("account_id", "destination"),
    # Migration 0007.
    _length("destination", 21, least=1),
    _length("note", 255),
)


# Several nodes on one store (migration 0008): each node's heartbeat, and the sessions
# bound on each, so that bind limits count every node.
nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),  # node-<node_id>
    sa.Column("node_id", sa.Integer, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("smpp", sa.String(255), nullable=False, server_default=""),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("stopped_at", UTCDateTime, nullable=True),
)

bound_sessions = sa.Table(
    "bound_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # <node>/<session number>
    sa.Column("node", sa.String(32), nullable=False),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("bind_type", sa.String(12), nullable=False),
    sa.Column("peer", sa.String(64), nullable=False),
    sa.Column("bound_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("bind_type IN ('transmitter', 'receiver', 'transceiver')",
                       name="bind_type"),
    sa.Index("ix_bound_sessions_account", "account_id"),
    sa.Index("ix_bound_sessions_node", "node"),
)


# --- web customer area (migration 0009) ----------------------------------------------

CUSTOMER_ROLES = ("customer", "operator")

# A person who signs in to the web area with an e-mail and a password (Argon2id); an
# operator is a customer with role 'operator'. `email` is the sign-in name, kept
# trimmed and lower-cased (store.customers), so its UNIQUE key is case-insensitive.
customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    # Where notices go when it is not the sign-in address.
    sa.Column("contact_email", sa.String(254), nullable=True),
    sa.Column("role", sa.String(16), nullable=False, server_default="customer"),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    sa.CheckConstraint("role IN ('customer', 'operator')", name="role"),
    _length("email", 254, least=3),
    _length("contact_email", 254),
)

# The SMPP accounts a customer holds; an account may have several holders.
customer_accounts = sa.Table(
    "customer_accounts",
    metadata,
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"),
              nullable=False),
    sa.PrimaryKeyConstraint("customer_id", "account_id"),
    sa.Index("ix_customer_accounts_account_id", "account_id"),
)

# Signed-in browsers. The cookie's value is never stored, only its hex SHA-256
# (auth.tokens.token_hash): a copy of the database opens no session.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_web_sessions_customer_id", "customer_id"),
)

# Bearer tokens of /api/v1, named by their holder; hashed like the session cookies.
# A revoked token keeps its row (revoked_at set), so its holder still sees it listed.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Index("ix_api_tokens_customer_id", "customer_id"),
    _length("name", 64, least=1),
)

# --- upstreams and routes as data (migration 0011) -------------------------------------

# The upstream connectors an operator manages at run time (`smppgw admin upstream`).
# `config` is the connector's settings as JSON (config.upstreams.UpstreamConfig's keys,
# the upstream's password included: the gateway must present it, so it cannot be a
# hash; it is never shown). `enabled` false: stopped by an operator, on every node.
upstreams = sa.Table(
    "upstreams",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    _length("name", 64, least=1),
)

# Which connectors, in failover order (comma-separated names), carry messages to
# destinations starting with `prefix` ("" = every destination); `account` is a
# system_id for a route of one account, "" for everyone (not NULL, so the pair is
# unique on both engines).
routes = sa.Table(
    "routes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("prefix", sa.String(16), nullable=False, server_default=""),
    sa.Column("account", sa.String(64), nullable=False, server_default=""),
    sa.Column("connectors", sa.String(1024), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    sa.UniqueConstraint("prefix", "account"),
    _length("prefix", 16),
    _length("account", 64),
    _length("connectors", 1024, least=1),
)
