"""The rate table: credits per segment by destination prefix, global or per account.

Rows with no account form the global table; rows with an account override it for that
account. Prices are integer minor units (store.money). The gateway loads everything
into memory (load_all) and prices each submit there, longest prefix first.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.account_keys import account_id_of
from store.engine import writer
from store.errors import RateNotFound
from store.money import check_amount
from store.tables import rates, utcnow

# Destination prefixes are international digits (country code first), like the
# destination_addr they are matched against.
_PREFIX = re.compile(r"[0-9]{1,15}")


def validate_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix.strip().removeprefix("+")):
        raise ValueError(
            f"rate prefix {str(prefix)[:20]!r} must be 1 to 15 digits of an international number, "
            "e.g. 33 or 336"
        )
    return prefix.strip().removeprefix("+")


class RateStore:
    """Repository of rates; every method is one short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def set_rate(self, prefix: str, price: int, system_id: str | None = None) -> int | None:
        """Set the price of a prefix (globally, or for one account); returns the old one."""
        prefix = validate_prefix(prefix)
        if isinstance(price, bool) or not isinstance(price, int) or price < 0:
            raise ValueError(f"price must be a non-negative int of minor units, got {price!r}")
        check_amount("price", price)
        async with self._writer.begin() as conn:
            account_id = await _scope(conn, system_id, lock=True)
            where = _where(account_id, prefix)
            old = (await conn.execute(sa.select(rates.c.price).where(*where))).scalar()
            if old is None:
                await conn.execute(
                    rates.insert().values(
                        account_id=account_id, prefix=prefix, price=price, updated_at=utcnow()
                    )
                )
            else:
                await conn.execute(
                    rates.update().where(*where).values(price=price, updated_at=utcnow())
                )
        return None if old is None else int(old)

    async def remove_rate(self, prefix: str, system_id: str | None = None) -> int:
        """Remove a prefix; returns the price it had."""
        prefix = validate_prefix(prefix)
        async with self._writer.begin() as conn:
            account_id = await _scope(conn, system_id)
            where = _where(account_id, prefix)
            old = (await conn.execute(sa.select(rates.c.price).where(*where))).scalar()
            if old is None:
                raise RateNotFound(prefix, system_id)
            await conn.execute(rates.delete().where(*where))
        return int(old)

    async def list_rates(self, system_id: str | None = None) -> list[dict[str, Any]]:
        """The global table, or one account's overrides, by prefix."""
        async with self._engine.connect() as conn:
            account_id = await _scope(conn, system_id)
            rows = await conn.execute(
                sa.select(rates.c.prefix, rates.c.price, rates.c.updated_at)
                .where(_account_is(account_id))
                .order_by(rates.c.prefix)
            )
            return [dict(r._mapping) for r in rows]

    async def load_all(self) -> list[dict[str, Any]]:
        """Every rate: account_id (None for global), prefix, price."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(rates.c.account_id, rates.c.prefix, rates.c.price).order_by(rates.c.id)
            )
            return [dict(r._mapping) for r in rows]


def _account_is(account_id: int | None) -> sa.ColumnElement[bool]:
    if account_id is None:
        return rates.c.account_id.is_(None)
    return rates.c.account_id == account_id


def _where(account_id: int | None, prefix: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (_account_is(account_id), rates.c.prefix == prefix)


async def _scope(conn: AsyncConnection, system_id: str | None, *, lock: bool = False) -> int | None:
    """None for the global table, else the account's id."""
    if system_id is None:
        return None
    # lock: two operators setting one account's prefix at once queue on PostgreSQL.
    return await account_id_of(conn, system_id, lock=lock)
