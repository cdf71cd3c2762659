"""The bind state table read as a table: every state against every request."""

from __future__ import annotations

import pytest

from gateway.states import State, check_request, check_response
from pdu.codec import PDU_CLASSES, RESPONSE_BIT
from pdu.codec import CommandId as C
from pdu.status import CommandStatus as S

OK, BNDSTS, ALYBND = S.ESME_ROK, S.ESME_RINVBNDSTS, S.ESME_RALYBND
BINDS = {C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER}
SUBMITS = {C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM}
REQUESTS = [cid for cid in PDU_CLASSES if not cid & RESPONSE_BIT]


def expected(state: State, cid: int) -> int:
    if state is State.OPEN:
        return OK if cid in BINDS | {C.ENQUIRE_LINK} else BNDSTS
    if state in (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX):
        if cid in BINDS:
            return ALYBND
        if cid in (C.ENQUIRE_LINK, C.UNBIND):
            return OK
        if cid in SUBMITS:
            return BNDSTS if state is State.BOUND_RX else OK
        return BNDSTS  # outbind, deliver_sm, alert_notification come from the SMSC side
    return BNDSTS


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
@pytest.mark.parametrize("cid", REQUESTS, ids=lambda c: C(c).name.lower())
def test_request_table(state, cid):
    assert check_request(state, cid) == expected(state, cid)


@pytest.mark.parametrize("state,cid,allowed", [
    (State.BOUND_RX, C.DELIVER_SM_RESP, True),
    (State.BOUND_TRX, C.DELIVER_SM_RESP, True),
    (State.BOUND_TX, C.DELIVER_SM_RESP, False),
    (State.OPEN, C.DELIVER_SM_RESP, False),
    (State.BOUND_TX, C.ENQUIRE_LINK_RESP, True),
    (State.UNBOUND, C.UNBIND_RESP, True),
    (State.CLOSED, C.UNBIND_RESP, False),
])
def test_response_table(state, cid, allowed):
    assert check_response(state, cid) is allowed
