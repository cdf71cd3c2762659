"""Sender addresses an account may put in source_addr: kinds, their rules, their TON.

Three kinds, as the modelled provider sells them: alphanumeric (at most 11 characters,
not all digits, TON 5), shortcode (3 to 8 digits, TON 3) and numeric (an international
number without '+' or leading 0, TON 1). A sender is usable only once it is enabled.
"""

from __future__ import annotations

import re

SENDER_KINDS = ("alphanumeric", "shortcode", "numeric")
SENDER_STATES = ("pending", "enabled", "disabled", "refused")

# SMPP 3.4 type_of_number values for each kind (section 5.2.5).
TON_UNKNOWN = 0
TON_FOR_KIND = {"numeric": 1, "shortcode": 3, "alphanumeric": 5}
KIND_FOR_TON = {ton: kind for kind, ton in TON_FOR_KIND.items()}

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


def ton_matches(kind: str, ton: int) -> bool:
    """True if a submit with this source TON may use a sender of `kind`.

    TON 0 (unknown) matches every kind: many clients never set the source TON, and the
    address itself was already matched exactly.
    """
    return ton == TON_UNKNOWN or TON_FOR_KIND.get(kind) == ton
