"""Sender addresses an account may put in source_addr: kinds, their rules, their TON.

Three kinds, as the modelled provider sells them: alphanumeric (at most 11 characters,
not all digits, TON 5), shortcode (3 to 8 digits, TON 3) and numeric (an international
number without '+' or leading 0, TON 1). A sender is usable only once it is enabled.
"""

from __future__ import annotations

import re

from pdu.fields import (
    NPI_ISDN,
    NPI_UNKNOWN,
    TON_ALPHANUMERIC,
    TON_INTERNATIONAL,
    TON_NATIONAL,
    TON_NETWORK_SPECIFIC,
    TON_UNKNOWN,
)

SENDER_KINDS = ("alphanumeric", "shortcode", "numeric")
SENDER_STATES = ("pending", "enabled", "disabled", "refused")

# SMPP 3.4 type_of_number and numbering_plan_indicator of each kind (sections 5.2.5,
# 5.2.6), as the modelled provider specifies them: what the gateway sends upstream.
TON_FOR_KIND = {
    "numeric": TON_INTERNATIONAL, "shortcode": TON_NETWORK_SPECIFIC,
    "alphanumeric": TON_ALPHANUMERIC,
}
NPI_FOR_KIND = {"numeric": NPI_ISDN, "shortcode": NPI_ISDN, "alphanumeric": NPI_UNKNOWN}
KIND_FOR_TON = {ton: kind for kind, ton in TON_FOR_KIND.items()}
# What clients put in source_addr_ton / _npi in the wild for a sender they were given:
# unknown, international, national, network specific, alphanumeric; unknown or ISDN.
# With lenient addressing any of these is taken for an enabled sender, whatever its kind.
LENIENT_SOURCE_TONS = frozenset({
    TON_UNKNOWN, TON_INTERNATIONAL, TON_NATIONAL, TON_NETWORK_SPECIFIC, TON_ALPHANUMERIC,
})
LENIENT_NPIS = frozenset({NPI_UNKNOWN, NPI_ISDN})

MAX_ALPHANUMERIC = 11
# Handsets display the GSM 03.38 basic set; keep to its ASCII-safe part so a sender
# looks the same on every network.
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9 .\-_&+'!?#()/]{1,11}")
_SHORTCODE = re.compile(r"[0-9]{3,8}")
# E.164: a country code never starts with 0; at most 15 digits in all.
_NUMERIC = re.compile(r"[1-9][0-9]{6,14}")


def guess_kind(address: str) -> str:
    """The kind an address most likely is: digits -> shortcode (≤ 8) or numeric."""
    if address.isdigit():
        return "shortcode" if len(address) <= 8 else "numeric"
    return "alphanumeric"


def validate_sender(address: str, kind: str | None = None) -> tuple[str, str]:
    """Return (address, kind) if `address` is a valid sender of `kind`, else ValueError.

    With no kind, guess_kind() picks one. A leading '+' on a numeric sender is dropped.
    """
    if not isinstance(address, str):
        raise TypeError(f"sender must be a string, got {type(address).__name__}")
    address = address.strip()
    if kind is None:
        kind = guess_kind(address.removeprefix("+"))
    if kind not in SENDER_KINDS:
        raise ValueError(f"sender kind must be one of {', '.join(SENDER_KINDS)}, got {kind!r}")
    if kind == "alphanumeric":
        if not _ALPHANUMERIC.fullmatch(address):
            raise ValueError(
                f"alphanumeric sender {address!r} must be 1 to {MAX_ALPHANUMERIC} letters, "
                "digits, spaces or .-_&+'!?#()/"
            )
        if address.isdigit():
            raise ValueError(
                f"alphanumeric sender {address!r} is all digits; use kind shortcode or numeric"
            )
    elif kind == "shortcode":
        if not _SHORTCODE.fullmatch(address):
            raise ValueError(f"shortcode sender {address!r} must be 3 to 8 digits")
    else:
        address = address.removeprefix("+")
        if not _NUMERIC.fullmatch(address):
            raise ValueError(
                f"numeric sender {address!r} must be an international number: country code "
                "and number, 7 to 15 digits, no leading 0"
            )
    return address, kind


def validate_state(state: str) -> str:
    if state not in SENDER_STATES:
        raise ValueError(f"sender state must be one of {', '.join(SENDER_STATES)}, got {state!r}")
    return state


def is_valid_sender(address: str, kind: str) -> bool:
    """True if `address` is a well-formed sender of `kind` exactly as given (no '+')."""
    try:
        return validate_sender(address, kind)[0] == address
    except ValueError:
        return False
