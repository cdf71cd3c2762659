"""Inbound numbers: which account owns the MO messages sent to a number.

An account owns exact numbers ("33612345678"), prefixes ("33612*": every number starting
33612) and ranges ("33612340000-33612349999": numbers of that length between the ends).
An MO goes to the owner of the exact number, else of the longest prefix, else of the
range holding it. Entries of different accounts never overlap, so each number has at
most one owner; an account may nest its own entries (see `InboundNumbers.add`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from store.engine import writer
from store.errors import StoreError
from store.tables import accounts, inbound_numbers

EntryKind = Literal["exact", "prefix", "range"]
MAX_DIGITS = 20
# Numbers per owners() query: every number brings up to MAX_DIGITS candidate prefixes,
# which stays under both drivers' bound-parameter limits (32766 / 32767).
_LOOKUP_CHUNK = 500


class InboundNumberTaken(StoreError):
    """The entry overlaps one another account holds (or the account holds it already)."""


class InvalidInboundNumber(StoreError, ValueError):
    """What the operator wrote is not a number, a prefix or a range."""


class InboundNumberNotFound(StoreError, LookupError):
    """The account holds no such entry."""


def normalise_number(number: str) -> str:
    """Digits only: '+33 6 12' and '00336 12' are written as MSISDNs are sent, '33612'."""
    digits = "".join(c for c in number if c.isdigit())
    if number.strip().startswith("00") and digits.startswith("00"):
        digits = digits[2:]
    return digits


@dataclass(frozen=True, slots=True)
class InboundEntry:
    """One thing an account owns. `number` is the exact number, the prefix's digits or
    the range's first number; `range_end` the range's last number (same length)."""

    kind: EntryKind
    number: str
    range_end: str | None = None

    @property
    def text(self) -> str:
        """As the operator writes it: 33612345678, 33612*, 33612340000-33612349999."""
        if self.kind == "prefix":
            return f"{self.number}*"
        if self.kind == "range":
            return f"{self.number}-{self.range_end}"
        return self.number

    def matches(self, number: str) -> bool:
        """Whether the (normalised) number belongs to this entry."""
        if self.kind == "exact":
            return number == self.number
        if self.kind == "prefix":
            return number.startswith(self.number)
        assert self.range_end is not None
        return len(number) == len(self.number) and self.number <= number <= self.range_end


def _digits(text: str, what: str, original: str) -> str:
    # Stricter than normalise_number: an operator's "33a612" is a typo, not "33612".
    cleaned = text.strip()
    international = cleaned.removeprefix("+")
    if not international.replace(" ", "").isdigit() or not international.isascii():
        raise InvalidInboundNumber(
            f"inbound number {original!r}: {what} must be digits (an optional leading '+' "
            "and spaces are ignored)"
        )
    digits = normalise_number(cleaned)
    if not 1 <= len(digits) <= MAX_DIGITS:
        raise InvalidInboundNumber(
            f"inbound number {original!r}: {what} must have 1 to {MAX_DIGITS} digits"
        )
    return digits


def parse_entry(text: str) -> InboundEntry:
    """An exact number, a prefix ending in '*' or a range 'first-last' (same length,
    first <= last); InvalidInboundNumber, saying what is wrong, for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInboundNumber("inbound number is empty: give a number, a prefix such as "
                                   "33612* or a range such as 33612340000-33612349999")
    stripped = text.strip()
    if stripped.endswith("*"):
        return InboundEntry("prefix", _digits(stripped[:-1], "a prefix", text))
    if "-" in stripped:
        first, _, last = stripped.partition("-")
        if "-" in last:
            raise InvalidInboundNumber(
                f"inbound number {text!r}: a range is first-last, with one '-'")
        start = _digits(first, "a range's first number", text)
        end = _digits(last, "a range's last number", text)
        if len(start) != len(end):
            raise InvalidInboundNumber(
                f"inbound number {text!r}: a range's ends must have the same number of "
                f"digits ({len(start)} and {len(end)})")
        if start > end:
            raise InvalidInboundNumber(
                f"inbound number {text!r}: a range's first number must not be above its last")
        return InboundEntry("range", start, end)
    return InboundEntry("exact", _digits(stripped, "a number", text))


def _heads(number: str) -> set[str]:
    """Every prefix of `number`, itself included."""
    return {number[:i] for i in range(1, len(number) + 1)}


def _overlapping(entry: InboundEntry) -> sa.ColumnElement[bool]:
    """Rows holding at least one number `entry` holds.

    Digit strings are compared only at equal lengths, where text order is number order.
    An exact number is a range of one (coalesce). A prefix p holds, among numbers of
    length L >= len(p), the interval p00..0-p99..9: it meets [a, b] when
    a[:len(p)] <= p <= b[:len(p)].
    """
    t = inbound_numbers
    last = sa.func.coalesce(t.c.range_end, t.c.number)
    if entry.kind == "prefix":
        p, k = entry.number, len(entry.number)
        return sa.or_(
            sa.and_(t.c.kind != "prefix", sa.func.length(t.c.number) >= k,
                    sa.func.substr(t.c.number, 1, k) <= p, sa.func.substr(last, 1, k) >= p),
            # One prefix inside the other.
            sa.and_(t.c.kind == "prefix",
                    sa.or_(t.c.number.in_(_heads(p)), sa.func.substr(t.c.number, 1, k) == p)),
        )
    first, final = entry.number, entry.range_end or entry.number
    width = sa.func.length(t.c.number)
    return sa.or_(
        sa.and_(t.c.kind != "prefix", width == len(first), t.c.number <= final, last >= first),
        sa.and_(t.c.kind == "prefix", width <= len(first),
                t.c.number >= sa.func.substr(sa.literal(first, sa.String), 1, width),
                t.c.number <= sa.func.substr(sa.literal(final, sa.String), 1, width)),
    )


def _entry(kind: str, number: str, range_end: str | None) -> InboundEntry:
    return InboundEntry(kind, number, range_end)  # type: ignore[arg-type]


def _precedence(entry: InboundEntry) -> tuple[int, int]:
    """Sort key, most specific first: exact, then the longest prefix, then the
    narrowest range (only an account's own nested entries ever compete)."""
    if entry.kind == "exact":
        return (0, 0)
    if entry.kind == "prefix":
        return (1, -len(entry.number))
    assert entry.range_end is not None
    return (2, int(entry.range_end) - int(entry.number))


class InboundNumbers:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._postgres = engine.dialect.name == "postgresql"

    async def add(self, account_id: int, number: str) -> InboundEntry:
        """Give the entry (number, prefix or range) to the account.

        InboundNumberTaken, naming the owner and its entry, if it overlaps an entry of
        another account, or if the account already holds this very entry. Overlapping
        the account's own entries is allowed: an operator can narrow a prefix to a range
        (add the range, then remove the prefix) without a moment when MOs have no owner.
        """
        entry = parse_entry(number)
        t = inbound_numbers
        async with self._writer.begin() as conn:
            if self._postgres:
                # The check and the insert must not interleave with another node's: this
                # mode excludes other writers of the table, not the MO path's reads.
                # (SQLite's BEGIN IMMEDIATE already serialises writers.)
                await conn.exec_driver_sql(
                    "LOCK TABLE inbound_numbers IN SHARE ROW EXCLUSIVE MODE")
            rows = (await conn.execute(
                sa.select(accounts.c.system_id, t.c.account_id, t.c.kind, t.c.number,
                          t.c.range_end)
                .join(accounts, accounts.c.id == t.c.account_id)
                .where(_overlapping(entry))
                .order_by(t.c.id)
            )).all()
            for system_id, owner, kind, first, last in rows:
                theirs = _entry(kind, first, last)
                if owner != account_id:
                    raise InboundNumberTaken(
                        f"inbound number {entry.text} overlaps {theirs.text}, which account "
                        f"{system_id!r} holds; remove it there first")
                if theirs == entry:
                    raise InboundNumberTaken(
                        f"account {system_id!r} already holds inbound number {entry.text}")
            await conn.execute(t.insert().values(
                account_id=account_id, kind=entry.kind, number=entry.number,
                range_end=entry.range_end))
        return entry

    async def remove(self, account_id: int, number: str) -> InboundEntry:
        """Take the entry, written as it was added, from the account;
        InboundNumberNotFound if the account does not hold exactly that entry."""
        entry = parse_entry(number)
        t = inbound_numbers
        end = t.c.range_end.is_(None) if entry.range_end is None else (
            t.c.range_end == entry.range_end)
        async with self._writer.begin() as conn:
            result = await conn.execute(t.delete().where(
                t.c.account_id == account_id, t.c.kind == entry.kind,
                t.c.number == entry.number, end))
        if result.rowcount == 0:
            raise InboundNumberNotFound(f"the account holds no inbound number {entry.text}")
        return entry

    async def list(self, account_id: int | None = None) -> list[tuple[str, InboundEntry]]:
        """(system_id, entry) of one account, or of all, by system_id then number."""
        t = inbound_numbers
        query = (
            sa.select(accounts.c.system_id, t.c.kind, t.c.number, t.c.range_end)
            .join(accounts, accounts.c.id == t.c.account_id)
            .order_by(accounts.c.system_id, t.c.number, t.c.kind, t.c.range_end)
        )
        if account_id is not None:
            query = query.where(t.c.account_id == account_id)
        async with self._engine.connect() as conn:
            rows = await conn.execute(query)
            return [(sid, _entry(kind, first, last)) for sid, kind, first, last in rows]

    async def owners(self, numbers: Iterable[str]) -> dict[str, int]:
        """Map each given number (as given) to its owning account id, when it has one:
        the exact number's owner, else the longest prefix's, else the range's. One
        query for up to 500 distinct numbers."""
        wanted = {n: normalise_number(n) for n in numbers}
        distinct = sorted({c for c in wanted.values() if c})
        if not distinct:
            return {}
        candidates: list[tuple[InboundEntry, int]] = []
        async with self._engine.connect() as conn:
            for i in range(0, len(distinct), _LOOKUP_CHUNK):
                rows = await conn.execute(_candidates(distinct[i:i + _LOOKUP_CHUNK]))
                candidates += [(_entry(kind, first, last), int(owner))
                               for owner, kind, first, last in rows]
        candidates.sort(key=lambda c: _precedence(c[0]))
        owner_of: dict[str, int] = {}
        for number in distinct:
            for entry, owner in candidates:
                if entry.matches(number):
                    owner_of[number] = owner
                    break
        return {given: owner_of[c] for given, c in wanted.items() if c in owner_of}


def _candidates(numbers: list[str]) -> sa.Select:
    """Entries that may hold one of `numbers`: exact numbers and prefixes among their
    heads (the index on number serves it), ranges of their lengths spanning any of them."""
    t = inbound_numbers
    spans: dict[int, tuple[str, str]] = {}
    for n in numbers:
        low, high = spans.get(len(n), (n, n))
        spans[len(n)] = (min(low, n), max(high, n))
    heads = set().union(*(_heads(n) for n in numbers))
    return sa.select(t.c.account_id, t.c.kind, t.c.number, t.c.range_end).where(sa.or_(
        sa.and_(t.c.kind != "range", t.c.number.in_(heads)),
        *(sa.and_(t.c.kind == "range", sa.func.length(t.c.number) == width,
                  t.c.number <= high, t.c.range_end >= low)
          for width, (low, high) in spans.items()),
    ))
