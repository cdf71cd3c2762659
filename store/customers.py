"""Customers of the web area: who they are, the SMPP accounts they hold, their signed-in
browsers (web sessions) and their API tokens.

A customer signs in with an e-mail, kept trimmed and lower-cased so that one address
is one customer whatever its case. Sessions and tokens are found by the SHA-256 of
their secret (auth.tokens.token_hash); the secret itself never reaches the store.
Each method is one short transaction; every write goes through store.engine.writer.

Customer dicts carry the row, without `password_hash` except from get() and by_email()
(sign-in and the admin checks need it), and `accounts`: the system_ids held, sorted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.account_keys import account_id_of
from store.bounds import check_id, check_text
from store.engine import writer
from store.errors import CustomerExists, CustomerNotFound
from store.tables import (
    CUSTOMER_ROLES,
    accounts,
    api_tokens,
    customer_accounts,
    customers,
    web_sessions,
)

# What a customer dict shows of the row (customer_dict adds the held system_ids).
_SHOWN = [c for c in customers.c if c.name != "password_hash"]
# What accounts() shows of each held account: enough for a list, no secrets.
_ACCOUNT_SHOWN = [
    accounts.c.id, accounts.c.system_id, accounts.c.status, accounts.c.balance,
    accounts.c.contact_email, accounts.c.created_at, accounts.c.updated_at,
]
_HEX = frozenset("0123456789abcdef")


def normalise_email(email: str, *, name: str = "email") -> str:
    """`email` trimmed and lower-cased; ValueError unless it looks like an address:
    exactly one "@" with text on both sides, no spaces or controls, 254 characters at
    most (RFC 5321's longest path)."""
    if not isinstance(email, str):
        raise TypeError(f"{name} must be text, got {type(email).__name__}")
    value = email.strip().lower()
    check_text(customers.c.email, value, name)
    local, at, domain = value.partition("@")
    if not at or not local or not domain or "@" in domain or any(
        c.isspace() for c in value
    ):
        raise ValueError(f"{name} {value!r} is not an e-mail address")
    return value


def _contact_email(email: str | None) -> str | None:
    """A contact address, trimmed (its case kept: it is only written to); None or ""
    for none."""
    if email is None or not email.strip():
        return None
    normalise_email(email, name="contact_email")
    return email.strip()


def _check_hash(value: str, name: str = "token_hash") -> str:
    """A hex SHA-256; ValueError for anything else, a secret passed by mistake above all."""
    if not _is_hash(value):
        raise ValueError(f"{name} must be a hex SHA-256 (64 lower-case hex digits)")
    return value


def _is_hash(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


def _password_hash(value: str) -> str:
    check_text(customers.c.password_hash, value)
    if not value:
        raise ValueError("password_hash must not be empty")
    return value


class CustomerStore:
    """Repository of customers, their accounts, web sessions and API tokens."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    # -- customers ------------------------------------------------------------------

    async def create(
        self,
        email: str,
        password_hash: str,
        *,
        role: str = "customer",
        contact_email: str | None = None,
        now: datetime,
    ) -> dict[str, Any]:
        """A new customer; CustomerExists if the e-mail (any case) is taken."""
        address = normalise_email(email)
        _password_hash(password_hash)
        if role not in CUSTOMER_ROLES:
            raise ValueError(f"role must be one of {', '.join(CUSTOMER_ROLES)}, got {role!r}")
        contact = _contact_email(contact_email)
        try:
            async with self._writer.begin() as conn:
                customer_id = (await conn.execute(
                    customers.insert().values(
                        email=address, password_hash=password_hash, contact_email=contact,
                        role=role, created_at=now, updated_at=now,
                    ).returning(customers.c.id)
                )).scalar_one()
        except sa.exc.IntegrityError as exc:
            # email is the only unique key a new row can collide on.
            raise CustomerExists(address) from exc
        created = await self.get(customer_id)
        assert created is not None
        return created

    async def get(self, customer_id: int) -> dict[str, Any] | None:
        """The customer (password_hash included), or None."""
        check_id("customer_id", customer_id)
        return await self._one(customers.c.id == customer_id)

    async def by_email(self, email: str) -> dict[str, Any] | None:
        """The customer signing in with `email` (any case, spaces around ignored;
        password_hash included), or None, also for text that is no address at all."""
        try:
            address = normalise_email(email)
        except (TypeError, ValueError):
            return None
        return await self._one(customers.c.email == address)

    async def _one(self, where: sa.ColumnElement[bool]) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(customers).where(where))).one_or_none()
            if row is None:
                return None
            held = await _held(conn, row.id)
        return _customer_dict(row, held.get(row.id, []))

    async def list_all(self) -> list[dict[str, Any]]:
        """Every customer by e-mail, each with the system_ids it holds."""
        async with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # One snapshot for both queries (READ COMMITTED gives one each).
                await conn.execution_options(isolation_level="REPEATABLE READ")
            rows = (await conn.execute(sa.select(*_SHOWN).order_by(customers.c.email))).all()
            held = await _held(conn)
        return [_customer_dict(row, held.get(row.id, [])) for row in rows]

    async def set_password_hash(self, customer_id: int, password_hash: str, now: datetime) -> None:
        """Change the password (sessions stay open: see close_sessions_of)."""
        await self._update(customer_id, now, password_hash=_password_hash(password_hash))

    async def set_contact_email(self, customer_id: int, email: str | None, now: datetime) -> None:
        """Where notices go; None (or "") for the sign-in address."""
        await self._update(customer_id, now, contact_email=_contact_email(email))

    async def _update(self, customer_id: int, now: datetime, **values: Any) -> None:
        check_id("customer_id", customer_id)
        async with self._writer.begin() as conn:
            result = await conn.execute(
                customers.update().where(customers.c.id == customer_id)
                .values(**values, updated_at=now)
            )
            if result.rowcount == 0:
                raise CustomerNotFound(customer_id)

    # -- accounts held --------------------------------------------------------------

    async def add_account(self, customer_id: int, system_id: str) -> bool:
        """The customer now holds the account; False if it already did.
        AccountNotFound or CustomerNotFound if either is unknown."""
        check_id("customer_id", customer_id)
        async with self._writer.begin() as conn:
            account_id = await account_id_of(conn, system_id, lock=True)
            await _lock_customer(conn, customer_id)
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            result = await conn.execute(
                insert(customer_accounts)
                .values(customer_id=customer_id, account_id=account_id)
                .on_conflict_do_nothing()
            )
            return result.rowcount == 1

    async def remove_account(self, customer_id: int, system_id: str) -> bool:
        """The customer no longer holds the account; False if it did not.
        AccountNotFound if there is no such account."""
        check_id("customer_id", customer_id)
        async with self._writer.begin() as conn:
            account_id = await account_id_of(conn, system_id)
            result = await conn.execute(customer_accounts.delete().where(
                customer_accounts.c.customer_id == customer_id,
                customer_accounts.c.account_id == account_id,
            ))
            return result.rowcount == 1

    async def accounts(self, customer_id: int) -> list[dict[str, Any]]:
        """The accounts the customer holds, by system_id (no password hashes)."""
        check_id("customer_id", customer_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(*_ACCOUNT_SHOWN)
                .join(customer_accounts, customer_accounts.c.account_id == accounts.c.id)
                .where(customer_accounts.c.customer_id == customer_id)
                .order_by(accounts.c.system_id)
            )).all()
        return [dict(row._mapping) for row in rows]

    async def owns(self, customer_id: int, system_id: str) -> bool:
        """True if the customer holds the account (False for an unknown one)."""
        check_id("customer_id", customer_id)
        async with self._engine.connect() as conn:
            found = (await conn.execute(
                sa.select(sa.literal(1))
                .select_from(customer_accounts.join(
                    accounts, accounts.c.id == customer_accounts.c.account_id))
                .where(customer_accounts.c.customer_id == customer_id,
                       accounts.c.system_id == system_id)
            )).first()
        return found is not None

    async def owners(self, system_id: str) -> list[dict[str, Any]]:
        """The customers holding the account, by e-mail; AccountNotFound if unknown."""
        async with self._engine.connect() as conn:
            account_id = await account_id_of(conn, system_id)
            rows = (await conn.execute(
                sa.select(*_SHOWN)
                .join(customer_accounts, customer_accounts.c.customer_id == customers.c.id)
                .where(customer_accounts.c.account_id == account_id)
                .order_by(customers.c.email)
            )).all()
            if not rows:
                return []
            held = await _held(conn, *(row.id for row in rows))
        return [_customer_dict(row, held.get(row.id, [])) for row in rows]

    # -- web sessions ---------------------------------------------------------------

    async def open_session(
        self, customer_id: int, token_hash: str, csrf_token: str, now: datetime,
        ttl: timedelta,
    ) -> None:
        """A signed-in browser, until now + ttl. CustomerNotFound if unknown."""
        check_id("customer_id", customer_id)
        _check_hash(token_hash)
        check_text(web_sessions.c.csrf_token, csrf_token)
        if not csrf_token:
            raise ValueError("csrf_token must not be empty")
        if ttl <= timedelta(0):
            raise ValueError(f"a session's ttl must be positive, got {ttl}")
        async with self._writer.begin() as conn:
            await _lock_customer(conn, customer_id)
            await conn.execute(web_sessions.insert().values(
                token_hash=token_hash, customer_id=customer_id, csrf_token=csrf_token,
                created_at=now, last_seen_at=now, expires_at=now + ttl,
            ))

    async def session(self, token_hash: str, now: datetime) -> dict[str, Any] | None:
        """The live session with its customer (customer_id, email, role, csrf_token,
        created_at, last_seen_at, expires_at), its last_seen_at moved to `now`; None if
        there is none or it has expired."""
        if not _is_hash(token_hash):
            return None
        live = sa.and_(web_sessions.c.token_hash == token_hash, web_sessions.c.expires_at > now)
        async with self._writer.begin() as conn:
            touched = await conn.execute(
                web_sessions.update().where(live).values(last_seen_at=now))
            if touched.rowcount == 0:
                return None
            row = (await conn.execute(
                sa.select(
                    web_sessions.c.customer_id, customers.c.email, customers.c.role,
                    web_sessions.c.csrf_token, web_sessions.c.created_at,
                    web_sessions.c.last_seen_at, web_sessions.c.expires_at,
                )
                .join(customers, customers.c.id == web_sessions.c.customer_id)
                .where(web_sessions.c.token_hash == token_hash)
            )).one()
        return dict(row._mapping)

    async def close_session(self, token_hash: str) -> bool:
        """Sign a browser out; False if there was no such session."""
        if not _is_hash(token_hash):
            return False
        async with self._writer.begin() as conn:
            result = await conn.execute(
                web_sessions.delete().where(web_sessions.c.token_hash == token_hash))
        return result.rowcount == 1

    async def close_sessions_of(self, customer_id: int) -> int:
        """Sign the customer out everywhere; returns how many sessions were closed."""
        check_id("customer_id", customer_id)
        async with self._writer.begin() as conn:
            result = await conn.execute(
                web_sessions.delete().where(web_sessions.c.customer_id == customer_id))
        return result.rowcount

    async def purge_sessions(self, now: datetime) -> int:
        """Delete the sessions expired at `now`; returns how many."""
        async with self._writer.begin() as conn:
            result = await conn.execute(
                web_sessions.delete().where(web_sessions.c.expires_at <= now))
        return result.rowcount

    # -- API tokens -----------------------------------------------------------------

    async def add_token(
        self, customer_id: int, name: str, token_hash: str, now: datetime
    ) -> int:
        """A new API token of the customer, named by them; returns its id.
        CustomerNotFound if unknown."""
        check_id("customer_id", customer_id)
        if not isinstance(name, str):
            raise TypeError(f"name must be text, got {type(name).__name__}")
        label = name.strip()
        check_text(api_tokens.c.name, label)
        if not label:
            raise ValueError("a token's name must not be empty")
        _check_hash(token_hash)
        async with self._writer.begin() as conn:
            await _lock_customer(conn, customer_id)
            return (await conn.execute(
                api_tokens.insert().values(
                    customer_id=customer_id, name=label, token_hash=token_hash,
                    created_at=now,
                ).returning(api_tokens.c.id)
            )).scalar_one()

    async def tokens(self, customer_id: int) -> list[dict[str, Any]]:
        """The customer's tokens, revoked ones included, oldest first; never a hash."""
        check_id("customer_id", customer_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.created_at,
                          api_tokens.c.last_used_at, api_tokens.c.revoked_at)
                .where(api_tokens.c.customer_id == customer_id)
                .order_by(api_tokens.c.id)
            )).all()
        return [dict(row._mapping) for row in rows]

    async def revoke_token(self, customer_id: int, token_id: int, now: datetime) -> bool:
        """Revoke one of the customer's own live tokens; False if the token is not
        theirs, does not exist, or was revoked already."""
        check_id("customer_id", customer_id)
        check_id("token_id", token_id)
        async with self._writer.begin() as conn:
            result = await conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id,
                       api_tokens.c.customer_id == customer_id,
                       api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return result.rowcount == 1

    async def customer_for_token(self, token_hash: str, now: datetime) -> dict[str, Any] | None:
        """The customer holding this live (unrevoked) token, plus `token_id`, the
        token's last_used_at moved to `now`; None otherwise."""
        if not _is_hash(token_hash):
            return None
        live = sa.and_(api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None))
        async with self._writer.begin() as conn:
            token_id = (await conn.execute(
                api_tokens.update().where(live).values(last_used_at=now)
                .returning(api_tokens.c.id)
            )).scalar_one_or_none()
            if token_id is None:
                return None
            row = (await conn.execute(
                sa.select(*_SHOWN)
                .join(api_tokens, api_tokens.c.customer_id == customers.c.id)
                .where(api_tokens.c.id == token_id)
            )).one()
            held = await _held(conn, row.id)
        return {**_customer_dict(row, held.get(row.id, [])), "token_id": token_id}


async def _lock_customer(conn: AsyncConnection, customer_id: int) -> None:
    """CustomerNotFound unless the customer exists; on PostgreSQL the row stays
    key-share locked to the end of the transaction, so it cannot go in between."""
    found = (await conn.execute(
        sa.select(customers.c.id).where(customers.c.id == customer_id)
        .with_for_update(key_share=True)
    )).scalar_one_or_none()
    if found is None:
        raise CustomerNotFound(customer_id)


async def _held(conn: AsyncConnection, *customer_ids: int) -> dict[int, list[str]]:
    """customer id -> system_ids held, sorted (every customer's when none is named)."""
    stmt = (
        sa.select(customer_accounts.c.customer_id, accounts.c.system_id)
        .join(accounts, accounts.c.id == customer_accounts.c.account_id)
        .order_by(customer_accounts.c.customer_id, accounts.c.system_id)
    )
    if customer_ids:
        stmt = stmt.where(customer_accounts.c.customer_id.in_(customer_ids))
    held: dict[int, list[str]] = {}
    for customer_id, system_id in await conn.execute(stmt):
        held.setdefault(customer_id, []).append(system_id)
    return held


def _customer_dict(row: sa.Row[Any], held: list[str]) -> dict[str, Any]:
    result = dict(row._mapping)
    result["accounts"] = held
    return result
