"""Errors raised by the store.

Every repository failure the caller is expected to handle is a `StoreError` subclass,
so the gateway can turn it into an SMPP status or an admin-socket message without
catching driver exceptions.
"""

from __future__ import annotations


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
