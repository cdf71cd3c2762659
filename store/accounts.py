"""Accounts: credentials, status, per-account settings (validated here) and the IP
networks allowed to bind.

Each method is one short transaction. Account creation writes the account, its
networks, its first senders (store.senders) and its initial credit (store.ledger) in
one transaction; account reads attach senders and the STOP list (store.stop_list).
A deleted account (`delete`, a soft delete) keeps its row for the books; `get` and
`load_all` no longer see it.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from store.account_keys import account_id_of
from store.bounds import check_text
from store.engine import writer
from store.errors import (
    AccountNotEmpty,
    AccountNotFound,
    AllowedIpNotFound,
    DuplicateAccount,
    DuplicateAllowedIp,
    TooManyAllowedIps,
)
from store.history import IN_FLIGHT
from store.ledger import insert_entry
from store.money import check_amount, format_credits
from store.senders import insert_senders, sender_row, senders_by_account, senders_of
from store.stop_list import destinations_by_account, destinations_of
from store.tables import (
    ACCOUNT_STATUSES,
    ADDRESSING_MODES,
    STOP_MODES,
    accounts,
    customer_accounts,
    deliveries,
    inbound_numbers,
    messages,
    utcnow,
)

# Aliased: create() takes a parameter named allowed_ips.
from store.tables import allowed_ips as ip_table


def canonical_network(network: str) -> str:
    """'10.0.0.1' -> '10.0.0.1/32', '2001:DB8::/32' -> '2001:db8::/32'.

    Host bits set under a prefix ('10.0.0.1/24') are refused rather than silently
    widened or narrowed: an ACL entry must mean what the operator typed.
    """
    try:
        return str(ipaddress.ip_network(network.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"not an IP address or network: {network!r} ({exc})") from None


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
    check_text(accounts.c.outbind_address, text)
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
        return check_amount(name, value)

    return check


def _email(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"contact_email {value!r} is not an e-mail address")  # noqa: TRY004
    check_text(accounts.c.contact_email, value)
    if value.count("@") != 1 or any(c.isspace() for c in value):
        raise ValueError(f"contact_email {value!r} is not an e-mail address")
    local, domain = value.split("@")
    if not local or "." not in domain:
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


class AccountStore:
    """Repository of accounts and their allowed networks, keyed by system_id."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

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
        if not isinstance(system_id, str) or not system_id or (
            len(system_id) > accounts.c.system_id.type.length
        ):
            raise ValueError(f"system_id must be 1 to 16 characters, got {system_id!r}")
        check_text(accounts.c.system_id, system_id)
        check_text(accounts.c.password_hash, password_hash)
        if isinstance(credits, bool) or not isinstance(credits, int) or credits < 0:
            raise ValueError(f"credits must be a non-negative int of minor units: {credits!r}")
        check_amount("initial credits", credits)
        networks = sorted({canonical_network(n) for n in allowed_ips})
        if max_allowed_ips is not None and len(networks) > max_allowed_ips:
            raise TooManyAllowedIps(system_id, max_allowed_ips)
        values = validate_settings(dict(settings or {}, contact_email=contact_email))
        sender_rows = [sender_row(row) for row in sender_list]
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
                await insert_senders(conn, account_id, sender_rows, now)
                if credits:
                    await insert_entry(conn, account_id, "topup", credits, now,
                                       note="initial credit")
        except sa.exc.IntegrityError as exc:
            # The only unique key an insert into a new account can hit is system_id.
            raise DuplicateAccount(system_id) from exc
        account = await self.get(system_id)
        assert account is not None
        return account

    async def get(self, system_id: str) -> dict[str, Any] | None:
        """The account as a dict with `allowed_ips`, `senders` and `stop_list`, or None."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(accounts).where(
                    accounts.c.system_id == system_id, accounts.c.deleted_at.is_(None)))
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
            sender_rows = await senders_of(conn, row.id)
            stopped = await destinations_of(conn, row.id)
        return _account_dict(row, list(networks), sender_rows, stopped)

    async def load_all(self) -> list[dict[str, Any]]:
        """Every account with its networks, senders and STOP list, from one snapshot."""
        async with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # READ COMMITTED would give each query its own snapshot.
                await conn.execution_options(isolation_level="REPEATABLE READ")
            rows = (await conn.execute(
                sa.select(accounts).where(accounts.c.deleted_at.is_(None))
                .order_by(accounts.c.id))).all()
            ip_rows = (
                await conn.execute(
                    sa.select(ip_table.c.account_id, ip_table.c.network).order_by(
                        ip_table.c.account_id, ip_table.c.network
                    )
                )
            ).all()
            senders_by = await senders_by_account(conn)
            stops_by = await destinations_by_account(conn)
        by_account: dict[int, list[str]] = {}
        for account_id, network in ip_rows:
            by_account.setdefault(account_id, []).append(network)
        return [
            _account_dict(
                row, by_account.get(row.id, []), senders_by.get(row.id), stops_by.get(row.id)
            )
            for row in rows
        ]

    async def set_password_hash(self, system_id: str, password_hash: str) -> None:
        check_text(accounts.c.password_hash, password_hash)
        await self._update_account(system_id, password_hash=password_hash)

    async def set_status(self, system_id: str, status: str) -> None:
        if status not in ACCOUNT_STATUSES:
            raise ValueError(f"status must be one of {ACCOUNT_STATUSES}, got {status!r}")
        await self._update_account(system_id, status=status)

    async def update_settings(self, system_id: str, values: Mapping[str, Any]) -> None:
        """Change per-account settings (store column names, see ACCOUNT_SETTINGS)."""
        checked = validate_settings(values)
        if checked:
            await self._update_account(system_id, **checked)

    async def in_flight(self, system_id: str) -> tuple[int, int]:
        """(MT messages not final, receipts and MOs waiting for the customer) of the
        account: what a delete would abandon."""
        async with self._engine.connect() as conn:
            account_id = await account_id_of(conn, system_id)
            return await _in_flight(conn, account_id)

    async def delete(self, system_id: str, *, forfeit_balance: bool = False) -> int:
        """Soft-delete the account: marked deleted (and suspended), its inbound numbers
        and web panel owners let go; its messages, ledger and audit rows stay. Refused
        (AccountNotEmpty) while messages are in flight, or while its balance is not zero
        unless `forfeit_balance`, which writes the balance off as an 'adjust' ledger row.
        Returns the credits forfeited (minor units)."""
        now = utcnow()
        async with self._writer.begin() as conn:
            row = (await conn.execute(
                sa.select(accounts.c.id, accounts.c.balance)
                .where(accounts.c.system_id == system_id, accounts.c.deleted_at.is_(None))
                .with_for_update()
            )).one_or_none()
            if row is None:
                raise AccountNotFound(system_id)
            mt, waiting = await _in_flight(conn, row.id)
            if mt or waiting:
                raise AccountNotEmpty(system_id, in_flight_reason(mt, waiting))
            if row.balance and not forfeit_balance:
                raise AccountNotEmpty(
                    system_id, f"its balance is {format_credits(row.balance)} credits; "
                    "transfer them to another account first, or forfeit them")
            if row.balance:
                # Money is never dropped silently: the balance leaves through the ledger.
                await insert_entry(conn, row.id, "adjust", -row.balance, now,
                                   note="balance forfeited: account deleted")
            await conn.execute(
                accounts.update().where(accounts.c.id == row.id)
                .values(balance=0, status="suspended", deleted_at=now, updated_at=now))
            await conn.execute(
                inbound_numbers.delete().where(inbound_numbers.c.account_id == row.id))
            await conn.execute(
                customer_accounts.delete().where(customer_accounts.c.account_id == row.id))
        return int(row.balance)

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
                account_id = await account_id_of(conn, system_id, lock=True)
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
            account_id = await account_id_of(conn, system_id)
            result = await conn.execute(
                ip_table.delete().where(
                    ip_table.c.account_id == account_id,
                    ip_table.c.network == canonical,
                )
            )
            if result.rowcount == 0:
                raise AllowedIpNotFound(system_id, canonical)


async def _in_flight(conn: Any, account_id: int) -> tuple[int, int]:
    mt = (await conn.execute(
        sa.select(sa.func.count()).select_from(messages).where(
            messages.c.account_id == account_id, messages.c.direction == "MT",
            messages.c.status.in_(IN_FLIGHT))
    )).scalar_one()
    waiting = (await conn.execute(
        sa.select(sa.func.count()).select_from(deliveries).where(
            deliveries.c.account_id == account_id, deliveries.c.state == "pending")
    )).scalar_one()
    return int(mt), int(waiting)


def in_flight_reason(mt: int, waiting: int) -> str:
    """Why an account with work in flight cannot be deleted, counted."""
    parts = []
    if mt:
        parts.append(f"{mt} message(s) not final yet (waiting for an upstream or for "
                     "their final state)")
    if waiting:
        parts.append(f"{waiting} receipt(s)/MO(s) waiting for delivery to the customer")
    return " and ".join(parts) + "; try again once they are final or expired"


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
