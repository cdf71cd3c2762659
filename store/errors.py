"""Errors raised by the store.

Every repository failure the caller is expected to handle is a `StoreError` subclass,
so the gateway can turn it into an SMPP status or an admin-socket message without
catching driver exceptions.
"""

from __future__ import annotations

from store.money import format_credits


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class AccountNotFound(StoreError, LookupError):
    def __init__(self, system_id: str) -> None:
        super().__init__(f"no account with system_id {system_id!r}")
        self.system_id = system_id


class DuplicateAccount(StoreError):
    def __init__(self, system_id: str) -> None:
        super().__init__(f"an account with system_id {system_id!r} already exists")
        self.system_id = system_id


class InsufficientCredit(StoreError):
    def __init__(self, account: str | int, needed: int | None = None) -> None:
        detail = f" (needs {needed} minor units)" if needed is not None else ""
        super().__init__(f"account {account!r} has insufficient credit{detail}")
        self.account = account
        self.needed = needed


class BalanceLimitExceeded(StoreError):
    """A credit would take a balance past store.money.MAX_AMOUNT; nothing was written."""

    def __init__(self, account: str, balance: int, amount: int, limit: int) -> None:
        super().__init__(
            f"account {account!r} cannot take {format_credits(amount)} more credits: its "
            f"balance {format_credits(balance)} would pass the limit of "
            f"{format_credits(limit)} credits"
        )
        self.account = account
        self.balance = balance
        self.amount = amount
        self.limit = limit


class AllowedIpNotFound(StoreError, LookupError):
    def __init__(self, system_id: str, network: str) -> None:
        super().__init__(f"account {system_id!r} has no allowed network {network}")
        self.system_id = system_id
        self.network = network


class DuplicateAllowedIp(StoreError):
    def __init__(self, system_id: str, network: str) -> None:
        super().__init__(f"account {system_id!r} already allows network {network}")
        self.system_id = system_id
        self.network = network


class MessageNotFound(StoreError, LookupError):
    def __init__(self, message_id: int) -> None:
        super().__init__(f"no message with id {message_id}")
        self.message_id = message_id


class TooManyAllowedIps(StoreError):
    def __init__(self, system_id: str, limit: int) -> None:
        super().__init__(
            f"account {system_id!r} already has the maximum of {limit} allowed IP entries; "
            "remove one first (or use a CIDR block)"
        )
        self.system_id = system_id
        self.limit = limit


class SenderNotFound(StoreError, LookupError):
    def __init__(self, system_id: str, address: str) -> None:
        super().__init__(f"account {system_id!r} has no sender {address!r}")
        self.system_id = system_id
        self.address = address


class DuplicateSender(StoreError):
    def __init__(self, system_id: str, address: str) -> None:
        super().__init__(f"account {system_id!r} already has sender {address!r}")
        self.system_id = system_id
        self.address = address


class StopEntryNotFound(StoreError, LookupError):
    def __init__(self, system_id: str, destination: str) -> None:
        super().__init__(f"account {system_id!r} has no STOP entry for {destination!r}")
        self.system_id = system_id
        self.destination = destination


class RateNotFound(StoreError, LookupError):
    def __init__(self, prefix: str, system_id: str | None) -> None:
        scope = f"account {system_id!r}" if system_id else "the global rate table"
        super().__init__(f"{scope} has no rate for prefix {prefix!r}")
        self.prefix = prefix
        self.system_id = system_id


class CustomerNotFound(StoreError, LookupError):
    def __init__(self, customer: int | str) -> None:
        super().__init__(f"no customer {customer!r}")
        self.customer = customer


class CustomerExists(StoreError):
    """A customer with this e-mail (compared lower-cased) already exists."""

    def __init__(self, email: str) -> None:
        super().__init__(f"a customer with e-mail {email!r} already exists")
        self.email = email


class SchemaNotAtHead(StoreError):
    """The store's schema is not the one this code needs (behind, empty or newer), and
    this node is not to migrate it; the message says what the operator should do."""

    def __init__(self, state: object, message: str) -> None:
        super().__init__(message)
        self.state = state  # a store.engine.SchemaState


class AccountNotEmpty(StoreError):
    """An account cannot be deleted yet: messages in flight, or credits left."""

    def __init__(self, system_id: str, reason: str) -> None:
        super().__init__(f"account {system_id!r} cannot be deleted: {reason}")
        self.system_id = system_id
        self.reason = reason
