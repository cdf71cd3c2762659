"""Accounts, their allowed networks, credit balances and the ledger, plus the audit log.

Each method is one short transaction. Every change of a balance writes its ledger row in
the same transaction, so a balance always equals the sum of its ledger (principle 4).
Amounts are integer minor units (store.money).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.engine import writer
from store.errors import (
    AccountNotFound,
    AllowedIpNotFound,
    DuplicateAccount,
    DuplicateAllowedIp,
    InsufficientCredit,
)
from store.tables import ACCOUNT_STATUSES, accounts, audit_log, ledger, utcnow

# Aliased: create() takes a parameter named allowed_ips.
from store.tables import allowed_ips as ip_table

# Kinds add_credits() may write; debits and transfers have their own paths.
CREDIT_KINDS = ("topup", "auto_topup", "refund", "adjust")


def canonical_network(network: str) -> str:
    """'10.0.0.1' -> '10.0.0.1/32', '2001:DB8::/32' -> '2001:db8::/32'.

    Host bits set under a prefix ('10.0.0.1/24') are refused rather than silently
    widened or narrowed: an ACL entry must mean what the operator typed.
    """
    try:
        return str(ipaddress.ip_network(network.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"not an IP address or network: {network!r} ({exc})") from None


def _positive_amount(amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an int of minor units, got {type(amount).__name__}")
    if amount <= 0:
        raise ValueError(f"amount must be positive, got {amount}")
    return amount


def _account_dict(row: sa.Row[Any], networks: list[str]) -> dict[str, Any]:
    result = dict(row._mapping)
    result["allowed_ips"] = networks
    return result


class AccountStore:
    """Repository of accounts; all methods are coroutines on an AsyncEngine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    # -- accounts ---------------------------------------------------------------

    async def create(
        self,
        system_id: str,
        password_hash: str,
        *,
        credits: int = 0,
        allowed_ips: tuple[str, ...] | list[str] = (),
        contact_email: str | None = None,
    ) -> dict[str, Any]:
        """Create an account; a positive initial credit is a 'topup' ledger row."""
        if not system_id or len(system_id) > accounts.c.system_id.type.length:
            raise ValueError(f"system_id must be 1 to 16 characters, got {system_id!r}")
        if isinstance(credits, bool) or not isinstance(credits, int) or credits < 0:
            raise ValueError(f"credits must be a non-negative int of minor units: {credits!r}")
        networks = sorted({canonical_network(n) for n in allowed_ips})
        now = utcnow()
        try:
            async with self._writer.begin() as conn:
                account_id = (
                    await conn.execute(
                        accounts.insert()
                        .values(
                            system_id=system_id,
                            password_hash=password_hash,
                            balance=credits,
                            contact_email=contact_email,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(accounts.c.id)
                    )
                ).scalar_one()
                if networks:
                    await conn.execute(
                        ip_table.insert(),
                        [{"account_id": account_id, "network": n} for n in networks],
                    )
                if credits:
                    await conn.execute(
                        ledger.insert().values(
                            account_id=account_id, kind="topup", amount=credits,
                            note="initial credit", created_at=now,
                        )
                    )
        except sa.exc.IntegrityError as exc:
            # The only unique key an insert into a new account can hit is system_id.
            raise DuplicateAccount(system_id) from exc
        account = await self.get(system_id)
        assert account is not None
        return account

    async def get(self, system_id: str) -> dict[str, Any] | None:
        """The account as a dict with `allowed_ips: list[str]`, or None."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(accounts).where(accounts.c.system_id == system_id))
            ).one_or_none()
            if row is None:
                return None
            networks = (
                await conn.execute(
                    sa.select(ip_table.c.network)
                    .where(ip_table.c.account_id == row.id)
                    .order_by(ip_table.c.network)
                )
            ).scalars().all()
        return _account_dict(row, list(networks))

    async def load_all(self) -> list[dict[str, Any]]:
        """Every account with its allowed networks: two queries, one snapshot."""
        async with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # READ COMMITTED would give each query its own snapshot.
                await conn.execution_options(isolation_level="REPEATABLE READ")
            rows = (await conn.execute(sa.select(accounts).order_by(accounts.c.id))).all()
            ip_rows = (
                await conn.execute(
                    sa.select(ip_table.c.account_id, ip_table.c.network).order_by(
                        ip_table.c.account_id, ip_table.c.network
                    )
                )
            ).all()
        by_account: dict[int, list[str]] = {}
        for account_id, network in ip_rows:
            by_account.setdefault(account_id, []).append(network)
        return [_account_dict(row, by_account.get(row.id, [])) for row in rows]

    async def set_password_hash(self, system_id: str, password_hash: str) -> None:
        await self._update_account(system_id, password_hash=password_hash)

    async def set_status(self, system_id: str, status: str) -> None:
        if status not in ACCOUNT_STATUSES:
            raise ValueError(f"status must be one of {ACCOUNT_STATUSES}, got {status!r}")
        await self._update_account(system_id, status=status)

    async def set_contact_email(self, system_id: str, contact_email: str | None) -> None:
        await self._update_account(system_id, contact_email=contact_email)

    async def _update_account(self, system_id: str, **values: Any) -> None:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                accounts.update()
                .where(accounts.c.system_id == system_id)
                .values(**values, updated_at=utcnow())
            )
            if result.rowcount == 0:
                raise AccountNotFound(system_id)

    # -- allowed networks ---------------------------------------------------------

    async def add_allowed_ip(self, system_id: str, network: str) -> str:
        """Allow a network to bind; returns its canonical text."""
        canonical = canonical_network(network)
        try:
            async with self._writer.begin() as conn:
                account_id = await _account_id(conn, system_id)
                await conn.execute(
                    ip_table.insert().values(account_id=account_id, network=canonical)
                )
        except sa.exc.IntegrityError as exc:
            raise DuplicateAllowedIp(system_id, canonical) from exc
        return canonical

    async def remove_allowed_ip(self, system_id: str, network: str) -> None:
        canonical = canonical_network(network)
        async with self._writer.begin() as conn:
            account_id = await _account_id(conn, system_id)
            result = await conn.execute(
                ip_table.delete().where(
                    ip_table.c.account_id == account_id,
                    ip_table.c.network == canonical,
                )
            )
            if result.rowcount == 0:
                raise AllowedIpNotFound(system_id, canonical)

    # -- credits ------------------------------------------------------------------

    async def add_credits(
        self,
        system_id: str,
        amount: int,
        *,
        kind: str = "topup",
        note: str | None = None,
        message_id: int | None = None,
    ) -> int:
        """Credit `amount` minor units (> 0); returns the new balance."""
        _positive_amount(amount)
        if kind not in CREDIT_KINDS:
            raise ValueError(f"kind must be one of {CREDIT_KINDS}, got {kind!r}")
        async with self._writer.begin() as conn:
            now = utcnow()
            balance = (
                await conn.execute(
                    accounts.update()
                    .where(accounts.c.system_id == system_id)
                    .values(balance=accounts.c.balance + amount, updated_at=now)
                    .returning(accounts.c.id, accounts.c.balance)
                )
            ).one_or_none()
            if balance is None:
                raise AccountNotFound(system_id)
            await conn.execute(
                ledger.insert().values(
                    account_id=balance.id, kind=kind, amount=amount,
                    message_id=message_id, note=note, created_at=now,
                )
            )
        return int(balance.balance)

    async def transfer(self, src: str, dst: str, amount: int) -> tuple[int, int]:
        """Move credit between accounts atomically; returns (src_balance, dst_balance).

        The debit is a conditional update (balance >= amount), so concurrent transfers
        and batched debits, on any number of nodes, can never overdraw `src`.
        """
        _positive_amount(amount)
        if src == dst:
            raise ValueError("cannot transfer credit from an account to itself")
        async with self._writer.begin() as conn:
            # Lock both rows in id order so that A->B and B->A running at the same time
            # on PostgreSQL queue up instead of deadlocking. NO KEY UPDATE leaves the
            # foreign-key share locks taken by concurrent ledger inserts free.
            # (SQLite ignores FOR UPDATE; BEGIN IMMEDIATE already serialises writers.)
            rows = (
                await conn.execute(
                    sa.select(accounts.c.id, accounts.c.system_id)
                    .where(accounts.c.system_id.in_((src, dst)))
                    .order_by(accounts.c.id)
                    .with_for_update(key_share=True)
                )
            ).all()
            ids = {row.system_id: row.id for row in rows}
            for system_id in (src, dst):
                if system_id not in ids:
                    raise AccountNotFound(system_id)
            now = utcnow()
            src_balance = (
                await conn.execute(
                    accounts.update()
                    .where(accounts.c.id == ids[src], accounts.c.balance >= amount)
                    .values(balance=accounts.c.balance - amount, updated_at=now)
                    .returning(accounts.c.balance)
                )
            ).scalar_one_or_none()
            if src_balance is None:
                raise InsufficientCredit(src, amount)
            dst_balance = (
                await conn.execute(
                    accounts.update()
                    .where(accounts.c.id == ids[dst])
                    .values(balance=accounts.c.balance + amount, updated_at=now)
                    .returning(accounts.c.balance)
                )
            ).scalar_one()
            await conn.execute(
                ledger.insert(),
                [
                    {"account_id": ids[src], "kind": "transfer_out", "amount": -amount,
                     "note": f"to {dst}", "created_at": now},
                    {"account_id": ids[dst], "kind": "transfer_in", "amount": amount,
                     "note": f"from {src}", "created_at": now},
                ],
            )
        return int(src_balance), int(dst_balance)

    async def balance(self, system_id: str) -> int:
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(
                    sa.select(accounts.c.balance).where(accounts.c.system_id == system_id)
                )
            ).scalar_one_or_none()
        if value is None:
            raise AccountNotFound(system_id)
        return int(value)

    async def ledger_sum(self, account_id: int) -> int:
        """Sum of an account's ledger; equals its balance (principle 4)."""
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0)).where(
                        ledger.c.account_id == account_id
                    )
                )
            ).scalar_one()
        return int(value)

    async def ledger_entries(self, account_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ledger rows of an account, newest first."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(ledger)
                .where(ledger.c.account_id == account_id)
                .order_by(ledger.c.id.desc())
                .limit(limit)
            )
            return [dict(row._mapping) for row in rows]

    # -- audit log ----------------------------------------------------------------

    async def audit(
        self,
        actor: str,
        action: str,
        target: str | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """Record an operator change; before/after are stored as JSON text."""
        async with self._writer.begin() as conn:
            await conn.execute(
                audit_log.insert().values(
                    at=utcnow(), actor=actor, action=action, target=target,
                    before=_to_json(before), after=_to_json(after),
                )
            )

    async def list_audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit entries first, with before/after decoded from JSON."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
            )
            entries = [dict(row._mapping) for row in rows]
        for entry in entries:
            for key in ("before", "after"):
                if entry[key] is not None:
                    entry[key] = json.loads(entry[key])
        return entries


def _to_json(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    # default=str: datetimes and Decimals in an audit record are for humans to read.
    return json.dumps(value, sort_keys=True, default=str)


async def _account_id(conn: AsyncConnection, system_id: str) -> int:
    account_id = (
        await conn.execute(sa.select(accounts.c.id).where(accounts.c.system_id == system_id))
    ).scalar_one_or_none()
    if account_id is None:
        raise AccountNotFound(system_id)
    return int(account_id)
