"""Bounds: money and operators' texts within what their columns hold, on both engines.

Balances and ledger amounts get a CHECK at 10**18 (store.money.MAX_STORED), under
BIGINT's 2**63 - 1: SQLite stores an integer sum that overflows as a float, which no
query of the books can read back. Prices and the automatic top-up and alert settings
get one at 10**15 (MAX_AMOUNT, the most an operator may give). The texts operators
write (system_id, e-mail, outbind, sender addresses and comments, STOP entries, ledger
notes, rate prefixes) get their VARCHAR length, which SQLite does not enforce.
stop_mode and addressing get the CHECK their comment had put off until a table copy.

Rows already out of bounds: free-text notes and comments are cut to their length;
anything else (money, names, modes) stops the migration with the rows to correct,
because no rule can guess what they should have been.

SQLite adds a CHECK only by copying the table (batch mode). Dropping the old `accounts`
with foreign keys on would delete its children (ON DELETE CASCADE) or fail on the
ledger's key, and foreign keys can only be switched off outside a transaction. So on
SQLite this migration commits the migrations before it, copies the tables with foreign
keys off (SQLite's documented procedure for schema changes), checks every key, commits,
and turns them on again; interrupted, it runs again from the start without harm.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen copies of store.money's bounds of that day.
MAX_STORED = 10**18
MAX_AMOUNT = 10**15


def _length(table: str, column: str, most: int, *, least: int = 0) -> tuple[str, str]:
    rule = f"length({column}) <= {most}" if least == 0 else (
        f"length({column}) BETWEEN {least} AND {most}"
    )
    return f"ck_{table}_{column}_length", rule


def _range(table: str, column: str, least: int, most: int) -> tuple[str, str]:
    return f"ck_{table}_{column}_range", f"{column} BETWEEN {least} AND {most}"


# Each table's new CHECKs (name, rule), as store.tables declares them. The names are
# final (op.f): alembic would otherwise apply store.tables' naming convention to them
# once more, as it did to the CHECKs of migrations 0001 and 0002, which are named
# ck_accounts_ck_accounts_status and so on in every database (left as they are).
CHECKS: dict[str, list[tuple[str, str]]] = {
    "accounts": [
        ("ck_accounts_balance_max", f"balance <= {MAX_STORED}"),
        ("ck_accounts_stop_mode", "stop_mode IN ('dlr', 'refuse')"),
        ("ck_accounts_addressing", "addressing IN ('lenient', 'strict')"),
        _range("accounts", "auto_topup_threshold", 0, MAX_AMOUNT),
        _range("accounts", "auto_topup_amount", 0, MAX_AMOUNT),
        _range("accounts", "auto_topup_monthly_cap", 0, MAX_AMOUNT),
        _range("accounts", "low_balance_threshold", 0, MAX_AMOUNT),
        _length("accounts", "system_id", 16, least=1),
        _length("accounts", "contact_email", 255),
        _length("accounts", "outbind_address", 255),
        _length("accounts", "outbind_system_id", 16),
        _length("accounts", "outbind_password", 9),
    ],
    "ledger": [
        _range("ledger", "amount", -MAX_STORED, MAX_STORED),
        _length("ledger", "note", 255),
    ],
    "senders": [
        _length("senders", "address", 21, least=1),
        _length("senders", "comment", 255),
    ],
    "stop_list": [
        _length("stop_list", "destination", 21, least=1),
        _length("stop_list", "note", 255),
    ],
    "rates": [
        ("ck_rates_price_max", f"price <= {MAX_AMOUNT}"),
        _length("rates", "prefix", 16, least=1),
    ],
}

# Free text cut to its length rather than refused: (table, column, length).
_CUT = (("ledger", "note", 255), ("senders", "comment", 255), ("stop_list", "note", 255))


def upgrade() -> None:
    bind = op.get_bind()
    with _copying_tables(bind):
        for table, column, most in _CUT:
            op.execute(
                f"UPDATE {table} SET {column} = substr({column}, 1, {most})"
                f" WHERE length({column}) > {most}"
            )
        _refuse_rows_out_of_bounds(bind)
        for table, checks in CHECKS.items():
            existing = _check_names(bind, table)
            missing = [(name, rule) for name, rule in checks if name not in existing]
            if not missing:
                continue  # an interrupted run on SQLite had copied this table already
            with op.batch_alter_table(table) as batch:
                for name, rule in missing:
                    batch.create_check_constraint(op.f(name), rule)


def downgrade() -> None:
    bind = op.get_bind()
    with _copying_tables(bind):
        for table, checks in CHECKS.items():
            existing = _check_names(bind, table)
            present = [name for name, _ in checks if name in existing]
            if not present:
                continue
            with op.batch_alter_table(table) as batch:
                for name in present:
                    batch.drop_constraint(op.f(name), type_="check")


def _check_names(bind: sa.Connection, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(bind).get_check_constraints(table)}


def _refuse_rows_out_of_bounds(bind: sa.Connection) -> None:
    """Stop, naming the rows, if any would break a new CHECK (NULL passes, as in CHECK)."""
    problems = []
    for table, checks in CHECKS.items():
        for name, rule in checks:
            ids = bind.exec_driver_sql(
                f"SELECT id FROM {table} WHERE NOT ({rule}) ORDER BY id LIMIT 11"
            ).scalars().all()
            if ids:
                shown = ", ".join(str(i) for i in ids[:10]) + (", ..." if len(ids) > 10 else "")
                problems.append(f"{table} id {shown}: not {rule} ({name})")
    if problems:
        raise RuntimeError(
            "migration 0007 cannot add the store's bounds; correct these rows and start "
            "again: " + "; ".join(problems)
        )


@contextmanager
def _copying_tables(bind: sa.Connection) -> Iterator[None]:
    """On SQLite, a transaction of its own with foreign keys off (see the docstring)."""
    if bind.dialect.name != "sqlite":
        yield
        return
    # The migrations before this one are complete: committing here leaves a schema
    # and an alembic_version that agree.
    bind.exec_driver_sql("COMMIT")
    bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        bind.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
            broken = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"migration 0007 broke foreign keys: {broken[:10]}")
        except BaseException:
            bind.exec_driver_sql("ROLLBACK")
            raise
        bind.exec_driver_sql("COMMIT")
    finally:
        bind.exec_driver_sql("PRAGMA foreign_keys=ON")
        # alembic records the version, and store.engine.migrate() commits, in this one.
        bind.exec_driver_sql("BEGIN IMMEDIATE")
