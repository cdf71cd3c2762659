"""The schema's bounds (migration 0007) on SQLite and PostgreSQL: the CHECKs a fresh
schema has are the ones migrations build, they hold when a repository is bypassed, and
migrating a populated store keeps every row and key (SQLite copies its tables for it)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import store_fixtures
from alembic import command
from store_fixtures import StoreDB

from store import tables
from store.engine import alembic_config, migrate, writer
from store.invariants import ledger_violations
from store.money import MAX_AMOUNT, MAX_STORED
from store.tables import metadata

store_db = store_fixtures.store_db
blank_db = store_fixtures.blank_db

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _checks(sync_conn: sa.Connection) -> dict[str, dict[str, str]]:
    """Every table's CHECKs, name -> rule, as the database reports them."""
    inspector = sa.inspect(sync_conn)
    found = {}
    for table in sorted(metadata.tables):
        if not inspector.has_table(table):  # a later migration's, after a downgrade
            continue
        rules = {}
        for check in inspector.get_check_constraints(table):
            # Migrations 0001/0002 named theirs with the convention applied twice.
            name = re.sub(rf"^ck_{table}_ck_{table}_", f"ck_{table}_", check["name"])
            rules[name] = " ".join(check["sqltext"].split())
        found[table] = rules
    return found


async def _upgrade(db: StoreDB, target: str) -> None:
    cfg = alembic_config()

    def run(sync_conn: sa.Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, target)

    async with writer(db.engine).begin() as conn:
        await conn.run_sync(run)


async def _downgrade(db: StoreDB, target: str) -> None:
    cfg = alembic_config()

    def run(sync_conn: sa.Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, target)

    async with writer(db.engine).begin() as conn:
        await conn.run_sync(run)


async def _version(db: StoreDB) -> list[str]:
    async with db.engine.connect() as conn:
        return sorted(
            v for (v,) in await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
        )


async def test_migrated_checks_are_the_checks_tables_declares(
    store_db: StoreDB, tmp_path: Path
) -> None:
    async with store_db.engine.connect() as conn:
        migrated = await conn.run_sync(_checks)
    async with store_fixtures._database(store_db.kind, tmp_path / "fresh") as fresh:
        async with fresh.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with fresh.engine.connect() as conn:
            declared = await conn.run_sync(_checks)
    assert migrated == declared
    # Guards the comparison against comparing nothing with nothing.
    assert "ck_accounts_balance_max" in migrated["accounts"]
    assert "ck_ledger_note_length" in migrated["ledger"]


async def _account(conn: sa.AsyncConnection, account_id: int = 1, **values: object) -> None:
    row = {"id": account_id, "system_id": f"acme{account_id}", "password_hash": "h",
           "created_at": T0, "updated_at": T0, **values}
    await conn.execute(tables.accounts.insert().values(**row))


@pytest.mark.parametrize(
    ("statement", "check"),
    [
        (f"UPDATE accounts SET balance = {MAX_STORED} + 1", "balance_max"),
        # On SQLite this sum overflows into a float: the CHECK is what refuses it.
        ("UPDATE accounts SET balance = 9000000000000000000 + 9000000000000000000",
         "balance_max|out of range"),
        (f"UPDATE accounts SET auto_topup_amount = {MAX_AMOUNT + 1}", "auto_topup_amount"),
        ("UPDATE accounts SET stop_mode = 'never'", "stop_mode"),
        ("UPDATE accounts SET system_id = ''", "system_id_length"),
        ((f"INSERT INTO ledger (account_id, kind, amount, created_at) VALUES"
         f" (1, 'adjust', {MAX_STORED + 1}, '2026-12-01')"), "amount_range"),
        ((f"INSERT INTO rates (prefix, price, updated_at) VALUES"
         f" ('33', {MAX_AMOUNT + 1}, '2026-12-01')"), "price_max"),
    ],
)
async def test_checks_refuse_what_a_repository_would(
    store_db: StoreDB, statement: str, check: str
) -> None:
    async with store_db.engine.begin() as conn:
        await _account(conn)
    with pytest.raises(sa.exc.DBAPIError, match=check):
        async with store_db.engine.begin() as conn:
            await conn.exec_driver_sql(statement)
    async with store_db.engine.connect() as conn:
        balance = (await conn.exec_driver_sql("SELECT balance FROM accounts")).scalar_one()
    assert balance == 0


@pytest.mark.parametrize(
    ("table", "column", "length"),
    [("ledger", "note", 255), ("senders", "comment", 255), ("stop_list", "note", 255),
     ("accounts", "contact_email", 255), ("senders", "address", 21)],
)
async def test_sqlite_enforces_text_lengths_too(
    store_db: StoreDB, table: str, column: str, length: int
) -> None:
    async with store_db.engine.begin() as conn:
        await _account(conn)
        await conn.execute(tables.ledger.insert().values(
            account_id=1, kind="adjust", amount=0, created_at=T0))
        await conn.execute(tables.senders.insert().values(
            account_id=1, address="ACME", kind="alphanumeric", created_at=T0, updated_at=T0))
        await conn.execute(tables.stop_list.insert().values(
            account_id=1, destination="33612345678", created_at=T0))
    column_ = metadata.tables[table].c[column]
    async with store_db.engine.begin() as conn:  # the longest that fits
        await conn.execute(sa.update(metadata.tables[table]).values({column_: "x" * length}))
    # SQLite names the CHECK; PostgreSQL's VARCHAR(n) refuses before it.
    with pytest.raises(sa.exc.DBAPIError, match=f"{column}_length|too long"):
        async with store_db.engine.begin() as conn:
            await conn.execute(
                sa.update(metadata.tables[table]).values({column_: "x" * (length + 1)}))


async def _populate_0006(db: StoreDB, note: str) -> None:
    async with db.engine.begin() as conn:
        await _account(conn, 1, balance=700)
        await _account(conn, 2)
        await conn.execute(tables.allowed_ips.insert().values(account_id=1, network="10.0.0.0/8"))
        await conn.execute(tables.senders.insert().values(
            account_id=1, address="ACME", kind="alphanumeric", state="enabled",
            comment=note, created_at=T0, updated_at=T0))
        await conn.execute(tables.stop_list.insert().values(
            account_id=1, destination="33612345678", note=note, created_at=T0))
        await conn.execute(tables.rates.insert().values(
            account_id=1, prefix="33", price=7, updated_at=T0))
        await conn.execute(tables.inbound_numbers.insert().values(
            account_id=1, number="33700000000", created_at=T0))
        await conn.execute(tables.alert_requests.insert().values(
            account_id=1, ms_addr="336", ms_ton=1, ms_npi=1, esme_addr="ACME", esme_ton=5,
            esme_npi=0, created_at=T0, expires_at=T0 + timedelta(days=1)))
        await conn.execute(tables.ledger.insert(), [
            {"account_id": 1, "kind": "topup", "amount": 1000, "note": note,
             "created_at": T0},
            {"account_id": 1, "kind": "transfer_out", "amount": -300, "note": "to acme2",
             "created_at": T0},
            {"account_id": 2, "kind": "transfer_in", "amount": 300, "note": "from acme1",
             "created_at": T0},
        ])
        await conn.exec_driver_sql("UPDATE accounts SET balance = 300 WHERE id = 2")


async def _counts(db: StoreDB) -> dict[str, int]:
    async with db.engine.connect() as conn:
        return {
            name: (await conn.exec_driver_sql(f"SELECT count(*) FROM {name}")).scalar_one()
            for name in ("accounts", "allowed_ips", "senders", "stop_list", "rates",
                         "inbound_numbers", "alert_requests", "ledger")
        }


async def test_0007_keeps_every_row_and_foreign_key(blank_db: StoreDB) -> None:
    await _upgrade(blank_db, "0006")
    # Notes longer than their column exist only where nothing refused them: SQLite.
    long_note = "n" * (300 if blank_db.kind == "sqlite" else 255)
    await _populate_0006(blank_db, long_note)
    before = await _counts(blank_db)
    await _upgrade(blank_db, "0007")
    assert await _counts(blank_db) == before
    assert await _version(blank_db) == ["0007"]
    assert await ledger_violations(blank_db.engine) == []
    async with blank_db.engine.connect() as conn:
        notes = (await conn.exec_driver_sql(
            "SELECT length(note) FROM ledger WHERE kind = 'topup'"
            " UNION ALL SELECT length(comment) FROM senders"
            " UNION ALL SELECT length(note) FROM stop_list")).scalars().all()
        assert notes == [255, 255, 255]
        if blank_db.kind == "sqlite":
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all() == []
    # Foreign keys still hold (and cascade) on the copied tables.
    with pytest.raises(sa.exc.IntegrityError):
        async with blank_db.engine.begin() as conn:
            await conn.execute(tables.senders.insert().values(
                account_id=99, address="X", kind="alphanumeric", created_at=T0,
                updated_at=T0))
    async with blank_db.engine.begin() as conn:
        await conn.execute(tables.ledger.delete().where(tables.ledger.c.account_id == 2))
        await conn.execute(tables.accounts.delete().where(tables.accounts.c.id == 2))
    assert (await _counts(blank_db))["accounts"] == 1


async def test_0007_refuses_money_out_of_bounds_and_changes_nothing(blank_db: StoreDB) -> None:
    await _upgrade(blank_db, "0006")
    async with blank_db.engine.begin() as conn:
        await _account(conn, 1)
        await _account(conn, 2, auto_topup_amount=MAX_AMOUNT + 1)
        if blank_db.kind == "sqlite":
            # What `credits add SID 5e16` twice left in an SQLite store: a float.
            await conn.exec_driver_sql(
                "UPDATE accounts SET balance = 9000000000000000000 + 9000000000000000000"
                " WHERE id = 1")
        else:
            await conn.exec_driver_sql(f"UPDATE accounts SET balance = {MAX_STORED + 1}"
                                       " WHERE id = 1")
    with pytest.raises(RuntimeError) as refused:
        await migrate(blank_db.engine)
    message = str(refused.value)
    assert "accounts id 1: not balance <=" in message
    assert "accounts id 2: not auto_topup_amount BETWEEN" in message
    assert await _version(blank_db) == ["0006"]
    async with blank_db.engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE accounts SET balance = 0, auto_topup_amount = NULL")
        if blank_db.kind == "sqlite":
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    await _upgrade(blank_db, "0007")
    assert await _version(blank_db) == ["0007"]


async def test_0007_downgrades_and_upgrades_again(blank_db: StoreDB) -> None:
    await _upgrade(blank_db, "0006")
    await _populate_0006(blank_db, "a note")
    before = await _counts(blank_db)
    await migrate(blank_db.engine)
    await _downgrade(blank_db, "0006")
    async with blank_db.engine.connect() as conn:
        assert "ck_accounts_balance_max" not in (await conn.run_sync(_checks))["accounts"]
    await migrate(blank_db.engine)
    assert await _counts(blank_db) == before
    async with blank_db.engine.connect() as conn:
        assert "ck_accounts_balance_max" in (await conn.run_sync(_checks))["accounts"]
