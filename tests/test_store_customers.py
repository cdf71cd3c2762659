"""CustomerStore on SQLite and PostgreSQL: customers of the web area, the accounts they
hold, their web sessions and API tokens; and migration 0009 that makes their tables."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import store_fixtures
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from store_fixtures import StoreDB, run_alembic

from auth.tokens import new_token, token_hash
from store import tables
from store.accounts import AccountStore
from store.customers import CustomerStore, normalise_email
from store.engine import writer
from store.errors import AccountNotFound, CustomerExists, CustomerNotFound

store_db = store_fixtures.store_db
blank_db = store_fixtures.blank_db

T0 = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
CUSTOMER_TABLES = {"customers", "customer_accounts", "web_sessions", "api_tokens"}


@pytest.fixture
def customers(store_db: StoreDB) -> CustomerStore:
    return CustomerStore(store_db.engine)


@pytest.fixture
def account_store(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


async def _customer(customers: CustomerStore, email: str = "ann@acme.test", **kw) -> int:
    return (await customers.create(email, "$argon2id$ann", now=T0, **kw))["id"]


# -- customers ------------------------------------------------------------------------


async def test_create_stores_the_email_trimmed_and_lower_cased(customers: CustomerStore) -> None:
    created = await customers.create("  Ann.Smith@ACME.test ", "$argon2id$h", now=T0)
    assert created["email"] == "ann.smith@acme.test"
    assert created["role"] == "customer"
    assert created["contact_email"] is None
    assert created["accounts"] == []
    assert (created["created_at"], created["updated_at"]) == (T0, T0)
    assert created["created_at"].tzinfo is UTC
    assert await customers.get(created["id"]) == created
    assert await customers.by_email("ANN.SMITH@acme.TEST") == created


async def test_create_an_operator_with_a_contact_address(customers: CustomerStore) -> None:
    created = await customers.create("ops@gw.test", "h", role="operator",
                                     contact_email=" Alerts@GW.test ", now=T0)
    assert created["role"] == "operator"
    # The contact address is only written to: trimmed, its case kept.
    assert created["contact_email"] == "Alerts@GW.test"
    assert created["password_hash"] == "h"


async def test_email_is_unique_whatever_its_case(customers: CustomerStore) -> None:
    first = await customers.create("ann@acme.test", "first", now=T0)
    with pytest.raises(CustomerExists, match="ann@acme.test") as taken:
        await customers.create(" ANN@Acme.Test", "second", now=T0 + HOUR)
    assert taken.value.email == "ann@acme.test"
    assert [c["id"] for c in await customers.list_all()] == [first["id"]]
    kept = await customers.by_email("ann@acme.test")
    assert kept is not None and kept["password_hash"] == "first"


@pytest.mark.parametrize(
    "email",
    ["ann.acme.test", "ann@@acme.test", "ann@b@acme.test", "@acme.test", "ann@", "   ",
     "ann smith@acme.test", "ann@acme\n.test", "a@" + "b" * 253],
)
async def test_create_refuses_what_is_no_email_address(
    customers: CustomerStore, email: str
) -> None:
    with pytest.raises(ValueError, match="email|e-mail"):
        await customers.create(email, "h", now=T0)
    assert await customers.list_all() == []


async def test_the_longest_email_fits(customers: CustomerStore) -> None:
    longest = "a@" + "b" * 252
    assert len(longest) == 254
    created = await customers.create(longest, "h", now=T0)
    assert created["email"] == longest
    assert normalise_email(" A@B ") == "a@b"


async def test_create_refuses_an_unknown_role_or_an_empty_hash(customers: CustomerStore) -> None:
    with pytest.raises(ValueError, match="role"):
        await customers.create("ann@acme.test", "h", role="admin", now=T0)
    with pytest.raises(ValueError, match="password_hash"):
        await customers.create("ann@acme.test", "", now=T0)
    with pytest.raises(ValueError, match="contact_email"):
        await customers.create("ann@acme.test", "h", contact_email="nowhere", now=T0)
    assert await customers.list_all() == []


async def test_unknown_customers_are_none(customers: CustomerStore) -> None:
    await _customer(customers)
    assert await customers.get(999) is None
    assert await customers.by_email("bob@acme.test") is None
    # What a sign-in form may carry is no error, just nobody.
    assert await customers.by_email("not an address") is None
    assert await customers.by_email("nul\x00@acme.test") is None
    assert await customers.by_email("x" * 1000) is None


async def test_list_all_gives_every_customer_with_its_accounts(
    customers: CustomerStore, account_store: AccountStore
) -> None:
    for system_id in ("zeta", "alpha", "mid"):
        await account_store.create(system_id, "h")
    bob = await _customer(customers, "bob@acme.test")
    ann = await _customer(customers, "ann@acme.test", role="operator")
    await _customer(customers, "cid@acme.test")
    for system_id in ("zeta", "alpha"):
        await customers.add_account(bob, system_id)
    await customers.add_account(ann, "mid")
    listed = await customers.list_all()
    assert [(c["email"], c["role"], c["accounts"]) for c in listed] == [
        ("ann@acme.test", "operator", ["mid"]),
        ("bob@acme.test", "customer", ["alpha", "zeta"]),
        ("cid@acme.test", "customer", []),
    ]
    assert all("password_hash" not in c for c in listed)
    assert (await customers.get(bob))["accounts"] == ["alpha", "zeta"]


async def test_password_and_contact_changes(customers: CustomerStore) -> None:
    ann = await _customer(customers)
    later = T0 + HOUR
    await customers.set_password_hash(ann, "$argon2id$new", later)
    await customers.set_contact_email(ann, "billing@acme.test", later)
    changed = await customers.get(ann)
    assert changed is not None
    assert (changed["password_hash"], changed["contact_email"]) == (
        "$argon2id$new", "billing@acme.test")
    assert (changed["created_at"], changed["updated_at"]) == (T0, later)
    await customers.set_contact_email(ann, None, later + HOUR)
    cleared = await customers.get(ann)
    assert cleared is not None
    assert (cleared["contact_email"], cleared["updated_at"]) == (None, later + HOUR)
    with pytest.raises(ValueError, match="contact_email"):
        await customers.set_contact_email(ann, "two@@acme.test", later)
    with pytest.raises(ValueError, match="password_hash"):
        await customers.set_password_hash(ann, "", later)
    with pytest.raises(CustomerNotFound):
        await customers.set_password_hash(999, "h", later)
    with pytest.raises(CustomerNotFound):
        await customers.set_contact_email(999, None, later)
    assert (await customers.get(ann))["password_hash"] == "$argon2id$new"


# -- accounts held --------------------------------------------------------------------


async def test_a_customer_holds_accounts_by_system_id(
    customers: CustomerStore, account_store: AccountStore
) -> None:
    await account_store.create("beta", "secret-hash", credits=0, contact_email="b@acme.test")
    await account_store.create("alpha", "secret-hash")
    ann = await _customer(customers)
    assert await customers.add_account(ann, "beta") is True
    assert await customers.add_account(ann, "alpha") is True
    assert await customers.add_account(ann, "beta") is False  # already held
    held = await customers.accounts(ann)
    assert [a["system_id"] for a in held] == ["alpha", "beta"]
    beta = held[1]
    assert {"id", "system_id", "status", "balance", "created_at"} <= set(beta)
    assert (beta["status"], beta["balance"], beta["contact_email"]) == (
        "active", 0, "b@acme.test")
    assert "password_hash" not in beta
    assert await customers.owns(ann, "beta")
    assert await customers.remove_account(ann, "beta") is True
    assert await customers.remove_account(ann, "beta") is False
    assert not await customers.owns(ann, "beta")
    assert [a["system_id"] for a in await customers.accounts(ann)] == ["alpha"]


async def test_holding_an_unknown_account_or_by_an_unknown_customer_is_refused(
    customers: CustomerStore, account_store: AccountStore
) -> None:
    await account_store.create("acme", "h")
    ann = await _customer(customers)
    with pytest.raises(AccountNotFound) as unknown:
        await customers.add_account(ann, "nobody")
    assert unknown.value.system_id == "nobody"
    with pytest.raises(AccountNotFound):
        await customers.remove_account(ann, "nobody")
    with pytest.raises(AccountNotFound):
        await customers.owners("nobody")
    with pytest.raises(CustomerNotFound):
        await customers.add_account(999, "acme")
    assert not await customers.owns(ann, "nobody")
    assert await customers.accounts(ann) == []
    assert await customers.owners("acme") == []


async def test_owners_and_owns_answer_per_customer(
    customers: CustomerStore, account_store: AccountStore
) -> None:
    await account_store.create("acme", "h")
    await account_store.create("other", "h")
    bob = await _customer(customers, "bob@acme.test")
    ann = await _customer(customers, "ann@acme.test")
    await _customer(customers, "eve@evil.test")
    await customers.add_account(bob, "acme")
    await customers.add_account(ann, "acme")
    await customers.add_account(ann, "other")
    owners = await customers.owners("acme")
    assert [(o["id"], o["email"], o["accounts"]) for o in owners] == [
        (ann, "ann@acme.test", ["acme", "other"]),
        (bob, "bob@acme.test", ["acme"]),
    ]
    assert all("password_hash" not in o for o in owners)
    assert await customers.owns(bob, "acme")
    assert not await customers.owns(bob, "other")


async def test_the_same_account_added_twice_at_once_is_added_once(
    customers: CustomerStore, account_store: AccountStore
) -> None:
    await account_store.create("acme", "h")
    ann = await _customer(customers)
    added = await asyncio.gather(*(customers.add_account(ann, "acme") for _ in range(4)))
    assert sorted(added) == [False, False, False, True]
    assert [a["system_id"] for a in await customers.accounts(ann)] == ["acme"]


async def test_deleting_an_account_removes_who_held_it(
    store_db: StoreDB, customers: CustomerStore, account_store: AccountStore
) -> None:
    await account_store.create("acme", "h")
    await account_store.create("keep", "h")
    ann = await _customer(customers)
    await customers.add_account(ann, "acme")
    await customers.add_account(ann, "keep")
    async with writer(store_db.engine).begin() as conn:
        await conn.execute(tables.accounts.delete().where(tables.accounts.c.system_id == "acme"))
    assert [a["system_id"] for a in await customers.accounts(ann)] == ["keep"]
    async with store_db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(tables.customer_accounts))).all()
    assert len(rows) == 1
    assert (await customers.get(ann))["accounts"] == ["keep"]


async def test_deleting_a_customer_removes_its_sessions_tokens_and_holdings(
    store_db: StoreDB, customers: CustomerStore, account_store: AccountStore
) -> None:
    await account_store.create("acme", "h")
    ann = await _customer(customers)
    bob = await _customer(customers, "bob@acme.test")
    for who in (ann, bob):
        await customers.add_account(who, "acme")
        await customers.open_session(who, token_hash(new_token()), new_token(), T0, HOUR)
        await customers.add_token(who, "ci", token_hash(new_token()), T0)
    async with writer(store_db.engine).begin() as conn:
        await conn.execute(tables.customers.delete().where(tables.customers.c.id == ann))
    async with store_db.engine.connect() as conn:
        left = {
            name: (await conn.execute(
                sa.select(tables.metadata.tables[name].c.customer_id))).scalars().all()
            for name in ("customer_accounts", "web_sessions", "api_tokens")
        }
    assert left == {"customer_accounts": [bob], "web_sessions": [bob], "api_tokens": [bob]}
    assert await account_store.get("acme") is not None


# -- web sessions ---------------------------------------------------------------------


async def test_an_open_session_is_found_with_its_customer(customers: CustomerStore) -> None:
    ann = await _customer(customers, role="operator")
    cookie, csrf = new_token(), new_token()
    await customers.open_session(ann, token_hash(cookie), csrf, T0, HOUR)
    seen_at = T0 + timedelta(minutes=5)
    found = await customers.session(token_hash(cookie), seen_at)
    assert found == {
        "customer_id": ann, "email": "ann@acme.test", "role": "operator",
        "csrf_token": csrf, "created_at": T0, "last_seen_at": seen_at,
        "expires_at": T0 + HOUR,
    }
    assert await customers.session(token_hash(new_token()), seen_at) is None
    # The cookie itself is not a key: only its hash is.
    assert await customers.session(cookie, seen_at) is None


async def test_looking_a_session_up_refreshes_last_seen(
    store_db: StoreDB, customers: CustomerStore
) -> None:
    ann = await _customer(customers)
    key = token_hash(new_token())
    await customers.open_session(ann, key, "csrf", T0, HOUR)
    await customers.session(key, T0 + timedelta(minutes=20))
    async with store_db.engine.connect() as conn:
        row = (await conn.execute(
            sa.select(tables.web_sessions).where(tables.web_sessions.c.token_hash == key)
        )).one()
    assert (row.created_at, row.last_seen_at, row.expires_at) == (
        T0, T0 + timedelta(minutes=20), T0 + HOUR)


async def test_the_store_never_holds_the_cookie_itself(
    store_db: StoreDB, customers: CustomerStore
) -> None:
    ann = await _customer(customers)
    cookie = new_token()
    with pytest.raises(ValueError, match="SHA-256"):
        await customers.open_session(ann, cookie, "csrf", T0, HOUR)
    with pytest.raises(ValueError, match="SHA-256"):
        await customers.add_token(ann, "ci", cookie, T0)
    async with store_db.engine.connect() as conn:
        counts = [
            (await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one()
            for t in (tables.web_sessions, tables.api_tokens)
        ]
    assert counts == [0, 0]


async def test_expired_sessions_are_not_returned_and_are_purged(
    store_db: StoreDB, customers: CustomerStore
) -> None:
    ann = await _customer(customers)
    short, long = token_hash(new_token()), token_hash(new_token())
    await customers.open_session(ann, short, "c1", T0, timedelta(minutes=10))
    await customers.open_session(ann, long, "c2", T0, timedelta(days=1))
    expiry = T0 + timedelta(minutes=10)
    assert await customers.session(short, expiry - timedelta(seconds=1)) is not None
    assert await customers.session(short, expiry) is None
    assert await customers.session(short, expiry + HOUR) is None
    assert await customers.purge_sessions(expiry - timedelta(seconds=1)) == 0
    assert await customers.purge_sessions(expiry + HOUR) == 1
    assert await customers.purge_sessions(expiry + HOUR) == 0
    async with store_db.engine.connect() as conn:
        kept = (await conn.execute(sa.select(tables.web_sessions.c.token_hash))).scalars().all()
    assert kept == [long]
    assert (await customers.session(long, expiry + HOUR))["csrf_token"] == "c2"


async def test_closing_sessions(customers: CustomerStore) -> None:
    ann = await _customer(customers)
    bob = await _customer(customers, "bob@acme.test")
    ann_keys = [token_hash(new_token()) for _ in range(3)]
    bob_key = token_hash(new_token())
    for key in ann_keys:
        await customers.open_session(ann, key, "csrf", T0, HOUR)
    await customers.open_session(bob, bob_key, "csrf", T0, HOUR)
    assert await customers.close_session(ann_keys[0]) is True
    assert await customers.close_session(ann_keys[0]) is False
    assert await customers.session(ann_keys[0], T0) is None
    assert await customers.close_sessions_of(ann) == 2
    assert await customers.close_sessions_of(ann) == 0
    assert all([await customers.session(k, T0) is None for k in ann_keys])
    assert (await customers.session(bob_key, T0))["customer_id"] == bob


async def test_a_session_needs_a_customer_a_csrf_token_and_a_lifetime(
    customers: CustomerStore,
) -> None:
    ann = await _customer(customers)
    key = token_hash(new_token())
    with pytest.raises(CustomerNotFound):
        await customers.open_session(999, key, "csrf", T0, HOUR)
    with pytest.raises(ValueError, match="csrf_token"):
        await customers.open_session(ann, key, "", T0, HOUR)
    with pytest.raises(ValueError, match="ttl"):
        await customers.open_session(ann, key, "csrf", T0, timedelta(0))
    assert await customers.session(key, T0) is None


# -- API tokens -----------------------------------------------------------------------


async def test_tokens_are_listed_without_their_hash(customers: CustomerStore) -> None:
    ann = await _customer(customers)
    first = await customers.add_token(ann, " deploy ", token_hash(new_token()), T0)
    second = await customers.add_token(ann, "ci", token_hash(new_token()), T0 + HOUR)
    assert first != second
    assert await customers.tokens(ann) == [
        {"id": first, "name": "deploy", "created_at": T0, "last_used_at": None,
         "revoked_at": None},
        {"id": second, "name": "ci", "created_at": T0 + HOUR, "last_used_at": None,
         "revoked_at": None},
    ]
    assert await customers.tokens(ann + 1) == []


async def test_a_live_token_names_its_customer_and_records_its_use(
    store_db: StoreDB, customers: CustomerStore, account_store: AccountStore
) -> None:
    await account_store.create("acme", "h")
    ann = await _customer(customers)
    await customers.add_account(ann, "acme")
    secret = new_token()
    token_id = await customers.add_token(ann, "ci", token_hash(secret), T0)
    used_at = T0 + timedelta(minutes=3)
    found = await customers.customer_for_token(token_hash(secret), used_at)
    assert found is not None
    assert (found["id"], found["email"], found["role"], found["accounts"], found["token_id"]) == (
        ann, "ann@acme.test", "customer", ["acme"], token_id)
    assert "password_hash" not in found
    assert (await customers.tokens(ann))[0]["last_used_at"] == used_at
    assert await customers.customer_for_token(token_hash(new_token()), used_at) is None
    assert await customers.customer_for_token(secret, used_at) is None


async def test_a_customer_revokes_only_its_own_tokens_and_only_once(
    customers: CustomerStore,
) -> None:
    ann = await _customer(customers)
    eve = await _customer(customers, "eve@evil.test")
    secret = new_token()
    token_id = await customers.add_token(ann, "ci", token_hash(secret), T0)
    assert await customers.revoke_token(eve, token_id, T0 + HOUR) is False
    assert await customers.customer_for_token(token_hash(secret), T0 + HOUR) is not None
    assert await customers.revoke_token(ann, token_id, T0 + 2 * HOUR) is True
    assert await customers.revoke_token(ann, token_id, T0 + 3 * HOUR) is False
    assert await customers.revoke_token(ann, token_id + 100, T0) is False
    assert await customers.customer_for_token(token_hash(secret), T0 + 4 * HOUR) is None
    listed = await customers.tokens(ann)
    assert [(t["id"], t["revoked_at"], t["last_used_at"]) for t in listed] == [
        (token_id, T0 + 2 * HOUR, T0 + HOUR)]


async def test_a_token_needs_a_customer_and_a_name(customers: CustomerStore) -> None:
    ann = await _customer(customers)
    with pytest.raises(CustomerNotFound):
        await customers.add_token(999, "ci", token_hash(new_token()), T0)
    with pytest.raises(ValueError, match="name"):
        await customers.add_token(ann, "  ", token_hash(new_token()), T0)
    with pytest.raises(ValueError, match="at most 64"):
        await customers.add_token(ann, "n" * 65, token_hash(new_token()), T0)
    assert await customers.tokens(ann) == []


# -- migration 0009 -------------------------------------------------------------------


async def _table_names(db: StoreDB) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


def _diff(sync_conn: sa.Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(sync_conn), tables.metadata))


async def test_0009_adds_the_customer_tables_and_downgrades_to_0008(blank_db: StoreDB) -> None:
    await run_alembic(blank_db, "upgrade", "0008")
    assert not CUSTOMER_TABLES & await _table_names(blank_db)
    async with blank_db.engine.begin() as conn:
        await conn.execute(tables.accounts.insert().values(
            id=1, system_id="acme", password_hash="h", created_at=T0, updated_at=T0))
    await run_alembic(blank_db, "upgrade", "0009")
    assert CUSTOMER_TABLES <= await _table_names(blank_db)
    customers = CustomerStore(blank_db.engine)
    ann = await _customer(customers)
    assert await customers.add_account(ann, "acme")
    await run_alembic(blank_db, "downgrade", "0008")
    assert not CUSTOMER_TABLES & await _table_names(blank_db)
    async with blank_db.engine.connect() as conn:
        version = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
        accounts = (await conn.exec_driver_sql("SELECT system_id FROM accounts")).all()
    assert [tuple(v) for v in version] == [("0008",)]
    assert [tuple(a) for a in accounts] == [("acme",)]
    await run_alembic(blank_db, "upgrade", "heads")
    async with blank_db.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
    assert await customers.list_all() == []
