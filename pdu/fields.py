"""What the bits and codes of SMPP 3.4's mandatory fields mean: esm_class (5.2.12),
registered_delivery (5.2.17), type_of_number and numbering_plan_indicator (5.2.5-6).

One home for each constant; the codec carries the fields, this names their values.
"""

from __future__ import annotations

# --- esm_class -------------------------------------------------------------------------
ESM_CLASS_MESSAGE_TYPE = 0x3C
"""Bits 2-5: the message type."""
ESM_CLASS_DEFAULT_TYPE = 0x00
ESM_CLASS_DELIVERY_RECEIPT = 0x04
"""SMSC -> ESME: the short message is a delivery receipt."""
ESM_CLASS_ESME_DELIVERY_ACK = 0x08
ESM_CLASS_ESME_MANUAL_ACK = 0x10
ESM_CLASS_INTERMEDIATE_NOTIFICATION = 0x20
"""SMSC -> ESME: an intermediate delivery notification (not final)."""
ESM_CLASS_UDHI = 0x40
"""Bit 6: the short_message begins with a User Data Header."""
ESM_TYPES_IN_SUBMIT = frozenset(
    {ESM_CLASS_DEFAULT_TYPE, ESM_CLASS_ESME_DELIVERY_ACK, ESM_CLASS_ESME_MANUAL_ACK}
)
"""Message types an ESME may set in a submit."""

# --- registered_delivery ---------------------------------------------------------------
REGISTERED_DELIVERY_MASK = 0x1F
"""Bits 0-4 are defined; the rest must be 0."""
RECEIPT_MASK = 0x03
RECEIPT_NONE = 0x00
RECEIPT_ALWAYS = 0x01
"""A receipt on the final outcome, delivered or not."""
RECEIPT_ON_FAILURE = 0x02
RECEIPT_RESERVED = 0x03

# --- type_of_number / numbering_plan_indicator -----------------------------------------
TON_UNKNOWN = 0
TON_INTERNATIONAL = 1
TON_NATIONAL = 2
TON_NETWORK_SPECIFIC = 3
TON_SUBSCRIBER = 4
TON_ALPHANUMERIC = 5
TON_ABBREVIATED = 6
NPI_UNKNOWN = 0
NPI_ISDN = 1

# --- interface_version -----------------------------------------------------------------
INTERFACE_VERSION_34 = 0x34
INTERFACE_VERSION_50 = 0x50

# --- priority_flag ---------------------------------------------------------------------
MAX_PRIORITY = 3
