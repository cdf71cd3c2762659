"""Inbound numbers: which account owns the MO messages sent to a number.

A number belongs to at most one account (a unique constraint), so an MO from upstream
has exactly one place to go. The admin surface adds and removes numbers; the MO path
reads them through `InboundNumbers.owners`.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from store.engine import writer
from store.errors import StoreError
from store.tables import inbound_numbers


class InboundNumberTaken(StoreError):
    """The number already belongs to an account."""


def normalise_number(number: str) -> str:
    """Digits only: '+33 6 12' and '00336 12' are written as MSISDNs are sent, '33612'."""
    digits = "".join(c for c in number if c.isdigit())
    if number.strip().startswith("00") and digits.startswith("00"):
        digits = digits[2:]
    return digits


class InboundNumbers:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def add(self, account_id: int, number: str) -> str:
        """Give `number` to the account; InboundNumberTaken if another already has it."""
        canonical = normalise_number(number)
        if not canonical or len(canonical) > 20:
            raise StoreError(f"inbound number {number!r} must have 1 to 20 digits")
        try:
            async with self._writer.begin() as conn:
                await conn.execute(
                    inbound_numbers.insert().values(account_id=account_id, number=canonical)
                )
        except sa.exc.IntegrityError:
            raise InboundNumberTaken(f"inbound number {canonical} is already assigned") from None
        return canonical

    async def remove(self, account_id: int, number: str) -> bool:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                inbound_numbers.delete().where(
                    inbound_numbers.c.account_id == account_id,
                    inbound_numbers.c.number == normalise_number(number),
                )
            )
        return result.rowcount > 0

    async def list(self, account_id: int) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(inbound_numbers.c.number)
                .where(inbound_numbers.c.account_id == account_id)
                .order_by(inbound_numbers.c.number)
            )
            return [r for (r,) in rows]

    async def owners(self, numbers: Iterable[str]) -> dict[str, int]:
        """Map each given number (as given) to its owning account id, when it has one."""
        wanted = {n: normalise_number(n) for n in numbers}
        if not wanted:
            return {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(inbound_numbers.c.number, inbound_numbers.c.account_id).where(
                    inbound_numbers.c.number.in_(set(wanted.values()))
                )
            )
            by_number = {number: int(account_id) for number, account_id in rows}
        return {given: by_number[c] for given, c in wanted.items() if c in by_number}
