"""The bind state machine of an SMSC-side session, as a table (SMPP 3.4 section 2.3).

A session starts OPEN; a successful bind moves it to BOUND_TX, BOUND_RX or BOUND_TRX;
unbind moves it to UNBOUND, and the transport closing to CLOSED. `ALLOWED` lists, per
state, the requests an ESME may send; anything else known to the codec gets
ESME_RINVBNDSTS (or ESME_RALYBND for a second bind). Responses an ESME may send are
in `ALLOWED_RESPONSES`. The table is the whole rule set: the session code only looks
things up here.
"""

from __future__ import annotations

from enum import Enum

from pdu.codec import CommandId as C
from pdu.status import CommandStatus


class State(Enum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


BIND_COMMANDS = {
    C.BIND_TRANSMITTER: State.BOUND_TX,
    C.BIND_RECEIVER: State.BOUND_RX,
    C.BIND_TRANSCEIVER: State.BOUND_TRX,
}

_SUBMITS = frozenset({C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM})
_ALWAYS = frozenset({C.ENQUIRE_LINK, C.UNBIND})

ALLOWED: dict[State, frozenset[int]] = {
    State.OPEN: frozenset(BIND_COMMANDS) | {C.ENQUIRE_LINK},
    State.BOUND_TX: _SUBMITS | _ALWAYS,
    State.BOUND_RX: _ALWAYS,
    State.BOUND_TRX: _SUBMITS | _ALWAYS,
    State.UNBOUND: frozenset(),
    State.CLOSED: frozenset(),
}

# Responses to what the gateway sent: deliver_sm and data_sm go only to sessions that
# can receive; enquire_link and unbind may go to any bound session.
_RX_RESPONSES = frozenset({C.DELIVER_SM_RESP, C.DATA_SM_RESP})
_ANY_RESPONSES = frozenset({C.ENQUIRE_LINK_RESP, C.UNBIND_RESP, C.GENERIC_NACK})
ALLOWED_RESPONSES: dict[State, frozenset[int]] = {
    State.OPEN: _ANY_RESPONSES,
    State.BOUND_TX: _ANY_RESPONSES,
    State.BOUND_RX: _ANY_RESPONSES | _RX_RESPONSES,
    State.BOUND_TRX: _ANY_RESPONSES | _RX_RESPONSES,
    State.UNBOUND: _ANY_RESPONSES,
    State.CLOSED: frozenset(),
}

BOUND_STATES = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
RECEIVING_STATES = frozenset({State.BOUND_RX, State.BOUND_TRX})
TRANSMITTING_STATES = frozenset({State.BOUND_TX, State.BOUND_TRX})


def check_request(state: State, command_id: int) -> int:
    """0 when the request may be handled in this state, else the status to answer."""
    if command_id in ALLOWED[state]:
        return CommandStatus.ESME_ROK
    if command_id in BIND_COMMANDS and state in BOUND_STATES:
        return CommandStatus.ESME_RALYBND
    return CommandStatus.ESME_RINVBNDSTS


def check_response(state: State, command_id: int) -> bool:
    return command_id in ALLOWED_RESPONSES[state]
