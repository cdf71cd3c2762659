"""Accounts, their allowed networks, credit balances and the ledger, plus the audit log.

Each method is one short transaction. Every change of a balance writes its ledger row in
the same transaction, so a balance always equals the sum of its ledger (principle 4).
Amounts are integer minor units (store.money).
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.engine import writer
from store.errors import (
    AccountNotFound,
    AllowedIpNotFound,
    DuplicateAccount,
    DuplicateAllowedIp,
    DuplicateSender,
    InsufficientCredit,
    SenderNotFound,
    StopEntryNotFound,
    TooManyAllowedIps,
)
from store.tables import (
    ACCOUNT_STATUSES,
    ADDRESSING_MODES,
    SENDER_KINDS,
    SENDER_STATES,
    STOP_MODES,
    accounts,
    audit_log,
    ledger,
    senders,
    stop_list,
    utcnow,
)

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


def _account_dict(
    row: sa.Row[Any],
    networks: list[str],
    sender_rows: list[dict[str, Any]] | None = None,
    stopped: list[str] | None = None,
) -> dict[str, Any]:
    result = dict(row._mapping)
    result["allowed_ips"] = networks
    result["senders"] = sender_rows or []
    result["stop_list"] = stopped or []
    return result


def _int_in(name: str, lo: int, hi: int) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer between {lo} and {hi}, got {value!r}")
        return value

    return check


def _bool(name: str) -> Any:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")  # noqa: TRY004 - operator input
        return value

    return check


def _throughput(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"throughput must be a positive number of messages/s, got {value!r}")
    return float(value)


def _stop_mode(value: Any) -> str:
    if value not in STOP_MODES:
        raise ValueError(f"stop_mode must be one of {', '.join(STOP_MODES)}, got {value!r}")
    return str(value)


def _addressing(value: Any) -> str:
    if value not in ADDRESSING_MODES:
        raise ValueError(
            f"addressing must be one of {', '.join(ADDRESSING_MODES)}, got {value!r}"
        )
    return str(value)


def _outbind_address(value: Any) -> str | None:
    """'host:port' ('[v6]:port' for IPv6), or empty for no outbind."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or any(c.isspace() for c in host) or not port.isdigit() or not (
        1 <= int(port) <= 65535
    ):
        raise ValueError(f"outbind_address must be host:port, got {value!r}")
    return text


def _c_octet(name: str, max_chars: int) -> Any:
    """An SMPP C-Octet String field the gateway presents (at most max_chars + NUL)."""

    def check(value: Any) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > max_chars or not value.isascii() or any(
            not c.isprintable() for c in value
        ):
            raise ValueError(f"{name} must be 1 to {max_chars} printable ASCII characters")
        return value

    return check


def _optional_minor(name: str, *, positive: bool) -> Any:
    def check(value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int of minor units, got {value!r}")  # noqa: TRY004
        if value < 0 or (positive and value == 0):
            raise ValueError(f"{name} must be {'positive' if positive else '0 or more'}")
        return value

    return check


def _email(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.count("@") != 1 or any(c.isspace() for c in value):
        raise ValueError(f"contact_email {value!r} is not an e-mail address")
    local, domain = value.split("@")
    if not local or "." not in domain or len(value) > 255:
        raise ValueError(f"contact_email {value!r} is not an e-mail address")
    return value


# Per-account settings an operator may change, each with its check; store column names.
ACCOUNT_SETTINGS: dict[str, Any] = {
    "window_size": _int_in("window", 1, 1_000_000),
    "throughput": _throughput,
    "bind_limit": _int_in("bind_limit", 1, 100),
    "gsm_packed": _bool("gsm_packed"),
    "max_segments": _int_in("max_segments", 1, 255),
    "keep_bodies": _bool("keep_bodies"),
    "vendor_tlvs": _bool("vendor_tlvs"),
    "dlr_retention_days": _int_in("dlr_retention_days", 1, 365),
    "stop_mode": _stop_mode,
    "addressing": _addressing,
    "outbind_address": _outbind_address,
    # SMPP 3.4: system_id is C-Octet String(16), password (9), NUL included.
    "outbind_system_id": _c_octet("outbind_system_id", 15),
    "outbind_password": _c_octet("outbind_password", 8),
    "auto_topup_threshold": _optional_minor("auto_topup_threshold", positive=False),
    "auto_topup_amount": _optional_minor("auto_topup_amount", positive=True),
    "auto_topup_monthly_cap": _optional_minor("auto_topup_monthly_cap", positive=True),
    "low_balance_threshold": _optional_minor("low_balance_threshold", positive=False),
    "contact_email": _email,
}


def validate_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check per-account settings (store column names); ValueError names the bad one."""
    unknown = set(values) - set(ACCOUNT_SETTINGS)
    if unknown:
        raise ValueError(
            f"unknown account setting(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(ACCOUNT_SETTINGS)}"
        )
    return {name: ACCOUNT_SETTINGS[name](value) for name, value in values.items()}


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class AccountStore:
    """Repository of accounts; all methods are coroutines on an AsyncEngine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # -- accounts ---------------------------------------------------------------

    async def create(
        self,
        system_id: str,
        password_hash: str,
        *,
        credits: int = 0,
        allowed_ips: tuple[str, ...] | list[str] = (),
        contact_email: str | None = None,
        settings: Mapping[str, Any] | None = None,
        sender_list: Iterable[Mapping[str, Any]] = (),
        max_allowed_ips: int | None = None,
    ) -> dict[str, Any]:
        """Create an account; a positive initial credit is a 'topup' ledger row.

        `settings` are per-account settings (see ACCOUNT_SETTINGS); `sender_list` rows
        carry address, kind, state and optional comment, already validated by the caller.
        """
        if not system_id or len(system_id) > accounts.c.system_id.type.length:
            raise ValueError(f"system_id must be 1 to 16 characters, got {system_id!r}")
        if isinstance(credits, bool) or not isinstance(credits, int) or credits < 0:
            raise ValueError(f"credits must be a non-negative int of minor units: {credits!r}")
        networks = sorted({canonical_network(n) for n in allowed_ips})
        if max_allowed_ips is not None and len(networks) > max_allowed_ips:
            raise TooManyAllowedIps(system_id, max_allowed_ips)
        values = validate_settings(dict(settings or {}, contact_email=contact_email))
        sender_rows = [_sender_row(row) for row in sender_list]
        addresses = [row["address"] for row in sender_rows]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"the same sender is listed twice: {sorted(addresses)}")
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
                            created_at=now,
                            updated_at=now,
                            **values,
                        )
                        .returning(accounts.c.id)
                    )
                ).scalar_one()
                if networks:
                    await conn.execute(
                        ip_table.insert(),
                        [{"account_id": account_id, "network": n} for n in networks],
                    )
                if sender_rows:
                    await conn.execute(
                        senders.insert(),
                        [
                            dict(row, account_id=account_id, created_at=now, updated_at=now)
                            for row in sender_rows
                        ],
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
            sender_rows = [
                dict(r._mapping)
                for r in await conn.execute(
                    sa.select(*_SENDER_COLUMNS)
                    .where(senders.c.account_id == row.id)
                    .order_by(senders.c.address)
                )
            ]
            stopped = (
                await conn.execute(
                    sa.select(stop_list.c.destination)
                    .where(stop_list.c.account_id == row.id)
                    .order_by(stop_list.c.destination)
                )
            ).scalars().all()
        return _account_dict(row, list(networks), sender_rows, list(stopped))

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
            sender_rows = (
                await conn.execute(
                    sa.select(senders.c.account_id, *_SENDER_COLUMNS).order_by(
                        senders.c.account_id, senders.c.address
                    )
                )
            ).all()
            stop_rows = (
                await conn.execute(
                    sa.select(stop_list.c.account_id, stop_list.c.destination).order_by(
                        stop_list.c.account_id, stop_list.c.destination
                    )
                )
            ).all()
        by_account: dict[int, list[str]] = {}
        for account_id, network in ip_rows:
            by_account.setdefault(account_id, []).append(network)
        senders_by: dict[int, list[dict[str, Any]]] = {}
        for sender in sender_rows:
            entry = dict(sender._mapping)
            senders_by.setdefault(entry.pop("account_id"), []).append(entry)
        stops_by: dict[int, list[str]] = {}
        for account_id, destination in stop_rows:
            stops_by.setdefault(account_id, []).append(destination)
        return [
            _account_dict(
                row, by_account.get(row.id, []), senders_by.get(row.id), stops_by.get(row.id)
            )
            for row in rows
        ]

    async def set_password_hash(self, system_id: str, password_hash: str) -> None:
        await self._update_account(system_id, password_hash=password_hash)

    async def set_status(self, system_id: str, status: str) -> None:
        if status not in ACCOUNT_STATUSES:
            raise ValueError(f"status must be one of {ACCOUNT_STATUSES}, got {status!r}")
        await self._update_account(system_id, status=status)

    async def set_contact_email(self, system_id: str, contact_email: str | None) -> None:
        await self._update_account(system_id, contact_email=_email(contact_email))

    async def update_settings(self, system_id: str, values: Mapping[str, Any]) -> None:
        """Change per-account settings (store column names, see ACCOUNT_SETTINGS)."""
        checked = validate_settings(values)
        if checked:
            await self._update_account(system_id, **checked)

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

    async def add_allowed_ip(
        self, system_id: str, network: str, *, max_count: int | None = None
    ) -> str:
        """Allow a network to bind; returns its canonical text.

        With `max_count`, refuses (TooManyAllowedIps) an account that already has that
        many; the count is taken in the same write transaction as the insert.
        """
        canonical = canonical_network(network)
        try:
            async with self._writer.begin() as conn:
                account_id = await _account_id(conn, system_id, lock=True)
                if max_count is not None:
                    count = (
                        await conn.execute(
                            sa.select(sa.func.count()).where(ip_table.c.account_id == account_id)
                        )
                    ).scalar_one()
                    if count >= max_count:
                        raise TooManyAllowedIps(system_id, max_count)
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

    # -- senders ------------------------------------------------------------------

    async def add_sender(
        self,
        system_id: str,
        address: str,
        kind: str,
        *,
        state: str = "pending",
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Add a sender (validated by auth.senders beforehand); returns its row."""
        row = _sender_row({"address": address, "kind": kind, "state": state, "comment": comment})
        now = utcnow()
        try:
            async with self._writer.begin() as conn:
                account_id = await _account_id(conn, system_id)
                await conn.execute(
                    senders.insert().values(
                        **row, account_id=account_id, created_at=now, updated_at=now
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise DuplicateSender(system_id, row["address"]) from exc
        return await self.get_sender(system_id, row["address"])

    async def get_sender(self, system_id: str, address: str) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            account_id = await _account_id(conn, system_id)
            found = (
                await conn.execute(
                    sa.select(*_SENDER_COLUMNS).where(
                        senders.c.account_id == account_id, senders.c.address == address
                    )
                )
            ).one_or_none()
        if found is None:
            raise SenderNotFound(system_id, address)
        return dict(found._mapping)

    async def list_senders(self, system_id: str) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            account_id = await _account_id(conn, system_id)
            rows = await conn.execute(
                sa.select(*_SENDER_COLUMNS)
                .where(senders.c.account_id == account_id)
                .order_by(senders.c.address)
            )
            return [dict(r._mapping) for r in rows]

    async def set_sender_state(
        self, system_id: str, address: str, state: str, comment: str | None = None
    ) -> dict[str, Any]:
        """Move a sender to `state`; a comment given replaces the stored one."""
        if state not in SENDER_STATES:
            raise ValueError(f"sender state must be one of {', '.join(SENDER_STATES)}")
        values: dict[str, Any] = {"state": state, "updated_at": utcnow()}
        if comment is not None:
            values["comment"] = comment
        async with self._writer.begin() as conn:
            account_id = await _account_id(conn, system_id)
            result = await conn.execute(
                senders.update()
                .where(senders.c.account_id == account_id, senders.c.address == address)
                .values(**values)
            )
            if result.rowcount == 0:
                raise SenderNotFound(system_id, address)
        return await self.get_sender(system_id, address)

    async def remove_sender(self, system_id: str, address: str) -> None:
        async with self._writer.begin() as conn:
            account_id = await _account_id(conn, system_id)
            result = await conn.execute(
                senders.delete().where(
                    senders.c.account_id == account_id, senders.c.address == address
                )
            )
            if result.rowcount == 0:
                raise SenderNotFound(system_id, address)

    # -- STOP list ----------------------------------------------------------------

    async def add_stop(self, system_id: str, destination: str, note: str | None = None) -> bool:
        """STOP-list a destination; False if it already was (adding twice is harmless)."""
        async with self._writer.begin() as conn:
            account_id = await _account_id(conn, system_id)
            exists = (
                await conn.execute(
                    sa.select(stop_list.c.id).where(
                        stop_list.c.account_id == account_id,
                        stop_list.c.destination == destination,
                    )
                )
            ).first()
            if exists:
                return False
            await conn.execute(
                stop_list.insert().values(
                    account_id=account_id, destination=destination, note=note,
                    created_at=utcnow(),
                )
            )
        return True

    async def remove_stop(self, system_id: str, destination: str) -> None:
        async with self._writer.begin() as conn:
            account_id = await _account_id(conn, system_id)
            result = await conn.execute(
                stop_list.delete().where(
                    stop_list.c.account_id == account_id,
                    stop_list.c.destination == destination,
                )
            )
            if result.rowcount == 0:
                raise StopEntryNotFound(system_id, destination)

    async def list_stop(self, system_id: str) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            account_id = await _account_id(conn, system_id)
            rows = await conn.execute(
                sa.select(stop_list.c.destination, stop_list.c.note, stop_list.c.created_at)
                .where(stop_list.c.account_id == account_id)
                .order_by(stop_list.c.destination)
            )
            return [dict(r._mapping) for r in rows]

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

    async def auto_topup(self, account_id: int, now: datetime | None = None) -> int | None:
        """Top the account up by its auto_topup_amount if its balance is at or below its
        threshold and the month's auto top-ups stay within the cap.

        Returns the amount added, or None when nothing was due or the cap is reached.
        Every check runs inside the write transaction that credits, so two nodes (or two
        triggers) racing cannot top up twice for one crossing.
        """
        now = now or utcnow()
        async with self._writer.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        accounts.c.balance,
                        accounts.c.auto_topup_threshold,
                        accounts.c.auto_topup_amount,
                        accounts.c.auto_topup_monthly_cap,
                    )
                    .where(accounts.c.id == account_id)
                    .with_for_update()
                )
            ).one_or_none()
            if row is None:
                raise AccountNotFound(f"id={account_id}")
            threshold, amount, cap = (
                row.auto_topup_threshold, row.auto_topup_amount, row.auto_topup_monthly_cap
            )
            if threshold is None or not amount or row.balance > threshold:
                return None
            if cap is not None:
                used = (
                    await conn.execute(
                        sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0)).where(
                            ledger.c.account_id == account_id,
                            ledger.c.kind == "auto_topup",
                            ledger.c.created_at >= _month_start(now),
                        )
                    )
                ).scalar_one()
                if int(used) + amount > cap:
                    return None
            await conn.execute(
                accounts.update()
                .where(accounts.c.id == account_id)
                .values(balance=accounts.c.balance + amount, updated_at=now)
            )
            await conn.execute(
                ledger.insert().values(
                    account_id=account_id, kind="auto_topup", amount=amount,
                    note="automatic top-up", created_at=now,
                )
            )
        return int(amount)

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


_SENDER_COLUMNS = (
    senders.c.address, senders.c.kind, senders.c.state, senders.c.comment,
    senders.c.created_at, senders.c.updated_at,
)


def _sender_row(row: Mapping[str, Any]) -> dict[str, Any]:
    kind, state = row.get("kind"), row.get("state", "pending")
    if kind not in SENDER_KINDS:
        raise ValueError(f"sender kind must be one of {', '.join(SENDER_KINDS)}, got {kind!r}")
    if state not in SENDER_STATES:
        raise ValueError(f"sender state must be one of {', '.join(SENDER_STATES)}, got {state!r}")
    address = row.get("address")
    if not isinstance(address, str) or not 1 <= len(address) <= senders.c.address.type.length:
        raise ValueError(f"sender address must be 1 to 21 characters, got {address!r}")
    return {"address": address, "kind": kind, "state": state, "comment": row.get("comment")}


async def _account_id(conn: AsyncConnection, system_id: str, *, lock: bool = False) -> int:
    stmt = sa.select(accounts.c.id).where(accounts.c.system_id == system_id)
    if lock:
        # Serialises concurrent "count then insert" on PostgreSQL (SQLite: BEGIN IMMEDIATE).
        stmt = stmt.with_for_update(key_share=True)
    account_id = (await conn.execute(stmt)).scalar_one_or_none()
    if account_id is None:
        raise AccountNotFound(system_id)
    return int(account_id)
