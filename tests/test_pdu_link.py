"""pdu.link: the SMPP connection rules, driven with bytes and a clock we hold.

Two links face each other (an SMSC and an ESME) or one link faces bytes we write by
hand; time only moves when a test says so. Every row of both state tables, both
windows, every deadline and the maximum age, without a socket or a sleep.
"""

from __future__ import annotations

import pytest

from pdu.codec import (
    AlertNotification,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CancelSm,
    CommandId,
    DataSm,
    DeliverSm,
    EnquireLink,
    GenericNack,
    Outbind,
    QuerySm,
    ReplaceSm,
    SmeDest,
    SubmitMulti,
    SubmitSm,
    Unbind,
    decode,
    encode,
    response_for,
)
from pdu.framing import Framer
from pdu.link import (
    BIND_TIMEOUT,
    FROM_ESME,
    FROM_SMSC,
    UNBOUND_ENQUIRE_LINK,
    BindRefused,
    Bound,
    Closed,
    Link,
    LinkConfig,
    LinkError,
    Request,
    Response,
    ResponseTimeout,
    Role,
    State,
    StrayResponse,
    Unbound,
    following_sequence,
)
from pdu.status import CommandStatus as S

T0 = 1000.0


def smsc(**overrides) -> Link:
    values = {"role": Role.SMSC, "bind_timeout": 30.0, "enquire_link_interval": 30.0,
              "response_timeout": 10.0, "max_age": 86400.0}
    values.update(overrides)
    return Link(LinkConfig(**values), T0)


def esme(**overrides) -> Link:
    values = {"role": Role.ESME, "enquire_link_interval": 30.0, "response_timeout": 10.0}
    values.update(overrides)
    return Link(LinkConfig(**values), T0)


def events(link: Link) -> list:
    out = []
    while (event := link.next_event()) is not None:
        out.append(event)
    return out


def written(link: Link) -> list:
    framer = Framer()
    framer.receive_data(link.data_to_send())
    return [decode(f) for f in framer.frames()]


def feed(link: Link, *pdus, now: float = T0) -> list:
    for pdu in pdus:
        link.receive_data(encode(pdu), now)
    return events(link)


def bound_smsc(state: State = State.BOUND_TRX, **overrides) -> Link:
    link = smsc(**overrides)
    cls = {State.BOUND_TX: BindTransmitter, State.BOUND_RX: BindReceiver,
           State.BOUND_TRX: BindTransceiver}[state]
    (request,) = feed(link, cls(sequence_number=1, system_id="acme", password="pw"))
    link.accept_bind(request.pdu, T0, system_id="smppgw")
    written(link)
    return link


def pair() -> tuple[Link, Link]:
    """An ESME bound to an SMSC as a transceiver, the bytes carried by hand."""
    server, client = smsc(), esme()
    client.bind(State.BOUND_TRX, T0, system_id="acme", password="pw")
    server.receive_data(client.data_to_send(), T0)
    (request,) = events(server)
    server.accept_bind(request.pdu, T0, system_id="smppgw")
    client.receive_data(server.data_to_send(), T0)
    (bound,) = events(client)
    assert isinstance(bound, Bound) and bound.state is State.BOUND_TRX
    return server, client


# --- the SMSC's table: every request in every state ------------------------------------

EVERY_REQUEST = {
    CommandId.BIND_TRANSMITTER: BindTransmitter(system_id="a"),
    CommandId.BIND_RECEIVER: BindReceiver(system_id="a"),
    CommandId.BIND_TRANSCEIVER: BindTransceiver(system_id="a"),
    CommandId.SUBMIT_SM: SubmitSm(),
    # submit_multi needs at least one destination to decode.
    CommandId.SUBMIT_MULTI: SubmitMulti(dest_addresses=[SmeDest(1, 1, "33600000000")]),
    CommandId.DATA_SM: DataSm(),
    CommandId.QUERY_SM: QuerySm(message_id="1"),
    CommandId.CANCEL_SM: CancelSm(),
    CommandId.REPLACE_SM: ReplaceSm(message_id="1"),
    CommandId.DELIVER_SM: DeliverSm(),
    CommandId.ENQUIRE_LINK: EnquireLink(),
    CommandId.UNBIND: Unbind(),
    CommandId.OUTBIND: Outbind(),
    CommandId.ALERT_NOTIFICATION: AlertNotification(),
}


def _in_state(role: Role, state: State) -> Link:
    if role is Role.SMSC:
        if state is State.OPEN:
            return smsc()
        if state is State.BINDING:
            link = smsc()
            feed(link, BindTransceiver(sequence_number=1, system_id="a"))
            return link
        if state in (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX):
            return bound_smsc(state)
        link = bound_smsc()
        link.unbind(T0)
        events(link)
        written(link)
        return link
    link = esme()
    if state is State.OPEN:
        return link
    if state is State.BINDING:
        link.bind(State.BOUND_TRX, T0, system_id="a", password="b")
        written(link)
        return link
    if state in (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX):
        seq = link.bind(state, T0, system_id="a", password="b")
        written(link)
        cls = {State.BOUND_TX: BindTransmitter, State.BOUND_RX: BindReceiver,
               State.BOUND_TRX: BindTransceiver}[state]
        feed(link, response_for(cls(sequence_number=seq), 0, system_id="s"))
        return link
    link = _in_state(role, State.BOUND_TRX)
    link.unbind(T0)
    events(link)
    written(link)
    return link


ROWS = [
    (role, state, cid)
    for role in Role
    for state in State
    if state is not State.CLOSED
    for cid in EVERY_REQUEST
]


@pytest.mark.parametrize("role,state,command_id", ROWS,
                         ids=[f"{r.value}-{s.value}-{c.name.lower()}" for r, s, c in ROWS])
def test_every_request_in_every_state_follows_the_table(role, state, command_id):
    link = _in_state(role, state)
    assert link.state is state
    pdu = EVERY_REQUEST[command_id]
    pdu.sequence_number = 77
    got = feed(link, pdu)
    answers = written(link)
    table = FROM_ESME if role is Role.SMSC else FROM_SMSC
    if command_id not in table[state]:
        # Refused by the link itself, with the status the spec gives.
        assert got == []
        (answer,) = answers
        assert answer.sequence_number == 77
        expected = S.ESME_RALYBND if (
            command_id in (CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER,
                           CommandId.BIND_TRANSCEIVER)
            and state in (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX)
        ) else S.ESME_RINVBNDSTS
        assert answer.command_status == expected
        if command_id in (CommandId.OUTBIND, CommandId.ALERT_NOTIFICATION):
            assert isinstance(answer, GenericNack)
        else:
            assert answer.command_id == command_id | 0x80000000
        return
    if command_id == CommandId.ENQUIRE_LINK:
        assert got == [] and answers[0].command_id == CommandId.ENQUIRE_LINK_RESP
    elif command_id == CommandId.UNBIND:
        assert answers[0].command_id == CommandId.UNBIND_RESP
        assert isinstance(got[-1], Closed) and link.state is State.CLOSED
        if state in (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX):
            assert isinstance(got[0], Unbound) and got[0].by_peer
    else:
        # The application's: handed over as a request, nothing answered yet.
        assert [type(e) for e in got] == [Request] and answers == []
        assert got[0].pdu.command_id == command_id


# --- binds ---------------------------------------------------------------------------


def test_smsc_bind_is_accepted_or_refused_and_may_be_retried():
    link = smsc()
    (request,) = feed(link, BindTransmitter(sequence_number=1, system_id="acme"))
    assert link.state is State.BINDING
    # Nothing else is taken while the bind is checked.
    feed(link, EnquireLink(sequence_number=2))
    assert written(link)[0].command_status == S.ESME_RINVBNDSTS
    link.refuse_bind(request.pdu, S.ESME_RINVPASWD, system_id="smppgw")
    (refusal,) = written(link)
    assert (refusal.command_status, refusal.system_id) == (S.ESME_RINVPASWD, "smppgw")
    assert link.state is State.OPEN
    (request,) = feed(link, BindTransmitter(sequence_number=3, system_id="acme"))
    link.accept_bind(request.pdu, T0 + 1, system_id="smppgw", window_in=5)
    assert link.state is State.BOUND_TX and link.bind_type == "transmitter"
    assert link.window_in == 5 and link.bound_at == T0 + 1
    with pytest.raises(LinkError):
        link.accept_bind(request.pdu, T0)


def test_esme_bind_binds_or_comes_back_open():
    link = esme()
    seq = link.bind(State.BOUND_RX, T0, system_id="acme", password="pw")
    (sent,) = written(link)
    assert isinstance(sent, BindReceiver) and sent.sequence_number == seq
    (refused,) = feed(link, response_for(sent, S.ESME_RBINDFAIL))
    assert isinstance(refused, BindRefused) and refused.status == S.ESME_RBINDFAIL
    assert link.state is State.OPEN
    seq = link.bind(State.BOUND_RX, T0, system_id="acme", password="pw")
    (bound,) = feed(link, response_for(written(link)[0], 0, system_id="smsc"))
    assert isinstance(bound, Bound) and link.can_receive and not link.can_transmit
    with pytest.raises(LinkError):
        link.bind(State.BOUND_TX, T0, system_id="x", password="y")


def test_outbind_is_sent_by_an_smsc_and_answered_by_a_bind():
    server, client = smsc(), esme()
    server.outbind("smppgw", "secret")
    client.receive_data(server.data_to_send(), T0)
    (request,) = events(client)
    assert isinstance(request.pdu, Outbind)
    assert (request.pdu.system_id, request.pdu.password) == ("smppgw", "secret")
    client.bind(State.BOUND_RX, T0, system_id="acme", password="pw")
    server.receive_data(client.data_to_send(), T0)
    (bind,) = events(server)
    assert isinstance(bind.pdu, BindReceiver)
    with pytest.raises(LinkError):
        client.outbind("x", "y")


# --- sequence numbers ------------------------------------------------------------------


def test_sequence_numbers_count_up_and_wrap_to_one():
    link = esme()
    assert [link.next_sequence() for _ in range(3)] == [1, 2, 3]
    assert [following_sequence(s) for s in (0x7FFFFFFE, 0x7FFFFFFF)] == [0x7FFFFFFF, 1]


# --- windows ---------------------------------------------------------------------------


def test_requests_beyond_the_peer_window_are_throttled_until_answered():
    link = bound_smsc(window_in=2)
    requests = feed(link, *(SubmitSm(sequence_number=i) for i in (1, 2, 3)))
    assert [r.pdu.sequence_number for r in requests] == [1, 2]
    (throttled,) = written(link)
    assert (throttled.sequence_number, throttled.command_status) == (3, S.ESME_RTHROTTLED)
    assert link.peer_outstanding == 2
    link.respond(requests[0].pdu, 0, message_id="m1")
    assert link.peer_outstanding == 1
    (again,) = feed(link, SubmitSm(sequence_number=4))
    assert again.pdu.sequence_number == 4
    # enquire_link is answered whatever the window.
    feed(link, EnquireLink(sequence_number=5))
    assert [p.command_id for p in written(link)] == [
        CommandId.SUBMIT_SM_RESP, CommandId.ENQUIRE_LINK_RESP]


def test_our_window_limits_what_we_send_and_responses_free_it():
    server, client = pair()
    client_window = client.config.window_out
    seqs = [client.send(SubmitSm(), T0, context=i) for i in range(client_window)]
    assert client.window_free() == 0 and client.awaiting == client_window
    with pytest.raises(LinkError):
        client.send(SubmitSm(), T0)
    server.receive_data(client.data_to_send(), T0)
    requests = events(server)
    for request in requests[:3]:
        server.respond(request.pdu, 0, message_id=f"up{request.pdu.sequence_number}")
    client.receive_data(server.data_to_send(), T0)
    responses = events(client)
    assert [(r.sequence_number, r.context) for r in responses] == [
        (seqs[0], 0), (seqs[1], 1), (seqs[2], 2)]
    assert responses[0].pdu().message_id == f"up{seqs[0]}"
    assert client.window_free() == 3


def test_a_generic_nack_answers_our_request_and_unasked_responses_are_stray():
    _server, client = pair()
    seq = client.send(SubmitSm(), T0, context="mine")
    written(client)
    (nack,) = feed(client, GenericNack(sequence_number=seq, command_status=S.ESME_RINVCMDLEN))
    assert isinstance(nack, Response) and nack.context == "mine"
    assert client.window_free() == client.config.window_out
    (stray,) = feed(client, response_for(SubmitSm(sequence_number=999), 0))
    assert isinstance(stray, StrayResponse) and stray.pdu().sequence_number == 999


def test_sending_is_refused_unless_bound():
    link = esme()
    with pytest.raises(LinkError):
        link.send(SubmitSm(), T0)


# --- deadlines -------------------------------------------------------------------------


def test_no_bind_within_the_bind_timeout_closes():
    link = smsc(bind_timeout=30.0)
    assert link.next_deadline() == T0 + 30
    link.handle_timer(T0 + 29.9)
    assert events(link) == []
    link.handle_timer(T0 + 30)
    (closed,) = events(link)
    assert isinstance(closed, Closed) and "bind" in closed.reason
    assert link.next_deadline() is None


def test_no_bind_within_the_bind_timeout_drops_the_link_and_what_it_queued():
    link = smsc(bind_timeout=30.0)
    feed(link, SubmitSm(sequence_number=1))  # refused ESME_RINVBNDSTS, never read
    assert link.unsent_bytes > 0
    link.handle_timer(T0 + 30)
    (closed,) = events(link)
    assert closed.abort == BIND_TIMEOUT and link.abort_cause == BIND_TIMEOUT
    assert link.unsent_bytes == 0 and written(link) == []


def test_enquire_link_before_a_bind_is_answered_up_to_its_rate_then_drops_the_link():
    link = smsc(unbound_enquire_rate=1.0, unbound_enquire_burst=3)
    for seq in (1, 2, 3):
        assert feed(link, EnquireLink(sequence_number=seq)) == []
    assert len(written(link)) == 3
    # One second later one more is allowed; a fifth at once is not.
    assert feed(link, EnquireLink(sequence_number=4), now=T0 + 1) == []
    (closed,) = feed(link, EnquireLink(sequence_number=5), now=T0 + 1)
    assert isinstance(closed, Closed) and closed.abort == UNBOUND_ENQUIRE_LINK
    assert [p.sequence_number for p in written(link)] == []


def test_enquire_link_of_a_bound_link_is_not_rate_limited():
    link = bound_smsc()
    assert feed(link, *(EnquireLink(sequence_number=i) for i in range(1, 101))) == []
    assert len(written(link)) == 100 and link.state is State.BOUND_TRX


def test_a_graceful_close_keeps_what_is_queued_and_asks_no_abort():
    link = bound_smsc()
    (_, closed) = feed(link, Unbind(sequence_number=4))
    assert closed.abort == "" and link.abort_cause == ""
    assert [p.command_id for p in written(link)] == [CommandId.UNBIND_RESP]


def test_unsent_bytes_count_what_is_queued_until_taken():
    link = bound_smsc()
    feed(link, EnquireLink(sequence_number=1))
    link.send_body(CommandId.DELIVER_SM, b"x" * 10, T0)
    link.write_raw(b"abc")
    assert link.unsent_bytes == 16 + 26 + 3
    assert len(link.data_to_send()) == 16 + 26 + 3 and link.unsent_bytes == 0


def test_a_bound_link_has_no_bind_deadline():
    link = bound_smsc(enquire_link_interval=None, max_age=None)
    assert link.next_deadline() is None
    link.handle_timer(T0 + 3600)
    assert events(link) == [] and link.state is State.BOUND_TRX


def test_an_unanswered_request_times_out_with_its_context():
    _server, client = pair()
    seq = client.send(SubmitSm(), T0, context="part-1")
    assert client.next_deadline() == T0 + 10
    client.handle_timer(T0 + 10)
    (timeout,) = events(client)
    assert isinstance(timeout, ResponseTimeout)
    assert (timeout.sequence_number, timeout.context) == (seq, "part-1")
    assert client.window_free() == client.config.window_out
    # A late answer is stray: its request was already given up.
    (late,) = feed(client, response_for(SubmitSm(sequence_number=seq), 0))
    assert isinstance(late, StrayResponse)


def test_enquire_link_on_an_idle_link_and_close_when_unanswered():
    _server, client = pair()
    written(client)
    assert client.next_deadline() == T0 + 30
    client.handle_timer(T0 + 29)
    assert written(client) == []
    client.handle_timer(T0 + 30)
    (probe,) = written(client)
    assert isinstance(probe, EnquireLink)
    assert client.next_deadline() == T0 + 40
    # Answered: the link stays, and the next probe waits for the next idle interval.
    feed(client, response_for(probe, 0), now=T0 + 31)
    assert client.next_deadline() == T0 + 31 + 30
    client.handle_timer(T0 + 61)
    (probe,) = written(client)
    client.handle_timer(T0 + 71)
    (closed,) = events(client)
    assert isinstance(closed, Closed) and "enquire_link" in closed.reason


def test_traffic_postpones_enquire_link():
    link = bound_smsc(max_age=None)
    link.receive_data(encode(EnquireLink(sequence_number=9)), T0 + 25)
    events(link)
    written(link)
    link.handle_timer(T0 + 30)
    assert written(link) == []
    assert link.next_deadline() == T0 + 55


def test_maximum_age_unbinds_and_closes_when_answered_or_not():
    link = bound_smsc(max_age=100.0, enquire_link_interval=None)
    assert link.next_deadline() == T0 + 100
    link.handle_timer(T0 + 100)
    (unbound,) = events(link)
    assert isinstance(unbound, Unbound) and not unbound.by_peer
    assert "maximum age" in unbound.reason and unbound.state is State.BOUND_TRX
    (unbind,) = written(link)
    assert isinstance(unbind, Unbind) and link.state is State.UNBINDING
    # Answered: closed at once.
    (closed,) = feed(link, response_for(unbind, 0))
    assert isinstance(closed, Closed)
    # Not answered: closed at the response time-out.
    link = bound_smsc(max_age=100.0, enquire_link_interval=None)
    link.handle_timer(T0 + 100)
    events(link)
    link.handle_timer(T0 + 110)
    (closed,) = events(link)
    assert isinstance(closed, Closed) and "unbind" in closed.reason


def test_an_unanswered_esme_bind_closes():
    link = esme()
    link.bind(State.BOUND_TX, T0, system_id="a", password="b")
    link.handle_timer(T0 + 10)
    (closed,) = events(link)
    assert isinstance(closed, Closed) and "bind" in closed.reason


def test_deliveries_awaiting_come_back_when_the_connection_is_lost():
    server, _client = pair()
    server.send_body(CommandId.DELIVER_SM, b"", T0, context="dlr-1")
    server.send(DeliverSm(), T0, context="dlr-2")
    assert server.awaiting == 2
    lost = server.connection_lost()
    assert sorted(ctx for _, ctx in lost) == ["dlr-1", "dlr-2"]
    assert server.state is State.CLOSED and server.next_deadline() is None


# --- unbind and bad input --------------------------------------------------------------


def test_unbind_from_the_peer_is_answered_and_closes():
    link = bound_smsc()
    unbound, closed = feed(link, Unbind(sequence_number=4))
    assert isinstance(unbound, Unbound) and unbound.by_peer
    assert isinstance(closed, Closed)
    assert [p.command_id for p in written(link)] == [CommandId.UNBIND_RESP]
    # Nothing more is taken once closed.
    assert feed(link, EnquireLink(sequence_number=5)) == [] and written(link) == []


def test_unbind_of_a_link_not_bound_just_closes():
    link = smsc()
    link.unbind(T0)
    (closed,) = events(link)
    assert isinstance(closed, Closed) and written(link) == []


def test_framing_error_answers_generic_nack_and_closes():
    link = bound_smsc()
    link.receive_data(b"\x00\x00\x00\x05\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x07",
                      T0)
    (closed,) = events(link)
    assert isinstance(closed, Closed) and "framing" in closed.reason
    (nack,) = written(link)
    assert isinstance(nack, GenericNack) and nack.command_status == S.ESME_RINVCMDLEN


def test_undecodable_requests_get_their_status_and_the_link_goes_on():
    link = bound_smsc()
    unknown = (16).to_bytes(4, "big") + (0x99).to_bytes(4, "big") + bytes(4) + (3).to_bytes(
        4, "big")
    link.receive_data(unknown, T0)
    link.receive_data(encode(SubmitSm(sequence_number=5, tlvs=[(0x0427, b"\x00\x01")])), T0)
    assert events(link) == []
    nack, resp = written(link)
    assert isinstance(nack, GenericNack) and nack.command_status == S.ESME_RINVCMDID
    assert (resp.command_id, resp.command_status) == (CommandId.SUBMIT_SM_RESP,
                                                      S.ESME_RINVPARLEN)
    assert link.state is State.BOUND_TRX


def test_many_frames_in_one_read_come_out_one_event_at_a_time():
    link = bound_smsc()
    link.receive_data(b"".join(encode(SubmitSm(sequence_number=i)) for i in range(1, 101)), T0)
    first = link.next_event()
    assert isinstance(first, Request) and first.pdu.sequence_number == 1
    rest = events(link)
    assert [e.pdu.sequence_number for e in rest] == list(range(2, 101))


def test_frames_the_link_answers_itself_are_handled_at_most_max_frames_a_call():
    link = smsc()  # not bound: every submit_sm is refused by the link, no event
    link.receive_data(b"".join(encode(SubmitSm(sequence_number=i)) for i in range(1, 101)), T0)
    assert link.next_event(max_frames=64) is None
    assert link.frames_in == 64 and len(written(link)) == 64
    assert link.next_event(max_frames=64) is None
    assert link.frames_in == 100 and len(written(link)) == 36
    assert link.next_event() is None and link.frames_in == 100


def test_alert_notification_is_sent_without_awaiting_an_answer():
    server, client = pair()
    server.notify(AlertNotification(source_addr="33600000000", esme_addr="ACME"))
    assert server.awaiting == 0
    client.receive_data(server.data_to_send(), T0)
    (request,) = events(client)
    assert isinstance(request.pdu, AlertNotification) and client.peer_outstanding == 0


def test_response_events_carry_the_status_of_the_answer():
    server, client = pair()
    seq = client.send(SubmitSm(), T0, context="c")
    server.receive_data(client.data_to_send(), T0)
    (request,) = events(server)
    server.respond(request.pdu, S.ESME_RTHROTTLED)
    client.receive_data(server.data_to_send(), T0)
    (response,) = events(client)
    assert isinstance(response, Response)
    assert (response.sequence_number, response.command_status) == (seq, S.ESME_RTHROTTLED)


def test_bytes_written_outside_the_rules_are_answered_as_stray_responses():
    server, client = smsc(), esme()
    seq = client.next_sequence()
    client.write_raw(encode(SubmitSm(sequence_number=seq)))  # before any bind
    server.receive_data(client.data_to_send(), T0)
    assert events(server) == []
    client.receive_data(server.data_to_send(), T0)
    (stray,) = events(client)
    assert isinstance(stray, StrayResponse)
    answer = stray.pdu()
    assert (answer.sequence_number, answer.command_status) == (seq, S.ESME_RINVBNDSTS)


def test_every_pdu_in_and_out_is_observed_the_links_own_answers_included():
    seen = []
    link = Link(LinkConfig(role=Role.SMSC), T0, observe=lambda *a: seen.append(a))
    feed(link, EnquireLink(sequence_number=1), SubmitSm(sequence_number=2))
    assert seen == [
        ("in", CommandId.ENQUIRE_LINK, 0), ("out", CommandId.ENQUIRE_LINK_RESP, 0),
        ("in", CommandId.SUBMIT_SM, 0), ("out", CommandId.SUBMIT_SM_RESP, S.ESME_RINVBNDSTS),
    ]
