"""The customer session's rules (gateway/sessions on pdu.link) over real TCP: bind
states, bind limits, rate and window throttles, framing errors, timers, shutdown.

Each case pins the command_status (or the closing of the connection) the SMPP 3.4
specification, or the provider's vendor table, gives for it.
"""

from __future__ import annotations

import asyncio

import pytest
from gw_helpers import new_account
from smpp_client import RawClient

from gateway.app import Gateway
from pdu.codec import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandId,
    DataSm,
    EnquireLink,
    GenericNack,
    Outbind,
    QuerySm,
    SmeDest,
    SubmitMulti,
    SubmitSm,
    Unbind,
)
from pdu.status import CommandStatus as S

GOOD_SUBMIT = {"source_addr_ton": 5, "source_addr": "ovh123", "dest_addr_ton": 1,
               "dest_addr_npi": 1, "destination_addr": "33601020304", "short_message": b"hi"}


async def _bound(gw: Gateway, account: dict, cls=BindTransceiver) -> RawClient:
    client = await RawClient.connect(*gw.endpoints.smpp)
    resp = await client.bind(account["system_id"], account["password"], cls=cls)
    assert resp.command_status == 0
    return client


async def _closed(client: RawClient, timeout: float = 5.0) -> bool:
    async def read_on() -> None:
        while True:
            await client.read(timeout)

    # Within `timeout` in all: the client's link answers enquire_link without a read
    # returning, so a gateway probing a live session would otherwise keep this going.
    try:
        await asyncio.wait_for(read_on(), timeout)
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def test_requests_before_bind_get_invalid_bind_status(gateway):
    client = await RawClient.connect(*gateway.endpoints.smpp)
    for pdu in (SubmitSm(**GOOD_SUBMIT), QuerySm(message_id="1"), Unbind()):
        assert (await client.request(pdu)).command_status == S.ESME_RINVBNDSTS
    assert (await client.request(EnquireLink())).command_status == 0
    await client.close()


async def test_second_bind_is_already_bound(gateway):
    account = await new_account(gateway)
    client = await _bound(gateway, account)
    again = await client.bind(account["system_id"], account["password"])
    assert again.command_status == S.ESME_RALYBND
    await client.close()


async def test_receiver_cannot_submit(gateway):
    account = await new_account(gateway)
    client = await _bound(gateway, account, cls=BindReceiver)
    for pdu in (SubmitSm(**GOOD_SUBMIT), DataSm(destination_addr="33601020304"),
                SubmitMulti(dest_addresses=[SmeDest(1, 1, "33601020304")])):
        assert (await client.request(pdu)).command_status == S.ESME_RINVBNDSTS
    await client.close()


async def test_outbind_from_an_esme_gets_generic_nack(gateway):
    client = await RawClient.connect(*gateway.endpoints.smpp)
    await client.send(Outbind(system_id="x", password="y"))
    nack = await client.read()
    assert isinstance(nack, GenericNack) and nack.command_status == S.ESME_RINVBNDSTS
    await client.close()


async def test_unknown_command_id_gets_generic_nack_and_session_lives(gateway):
    account = await new_account(gateway)
    client = await _bound(gateway, account)
    await client.send_raw((16).to_bytes(4, "big") + (0x00000999).to_bytes(4, "big") + bytes(4)
                          + (77).to_bytes(4, "big"))
    nack = await client.read()
    assert isinstance(nack, GenericNack)
    assert (nack.command_status, nack.sequence_number) == (S.ESME_RINVCMDID, 77)
    assert (await client.request(SubmitSm(**GOOD_SUBMIT))).command_status == 0
    await client.close()


@pytest.mark.parametrize("length", [8, 15, 10_000_000])
async def test_bad_command_length_nacks_and_closes(gateway, length):
    client = await RawClient.connect(*gateway.endpoints.smpp)
    await client.send_raw(length.to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(8))
    nack = await client.read()
    assert isinstance(nack, GenericNack) and nack.command_status == S.ESME_RINVCMDLEN
    assert await _closed(client)


async def test_field_error_answers_the_matching_response(gateway):
    account = await new_account(gateway)
    client = await _bound(gateway, account)
    body = b"\x00\x05\x00" + b"x" * 40  # source_addr without NUL within 21 octets
    await client.send_raw((16 + len(body)).to_bytes(4, "big") + (4).to_bytes(4, "big")
                          + bytes(4) + (9).to_bytes(4, "big") + body)
    resp = await client.read()
    assert resp.command_id == CommandId.SUBMIT_SM_RESP
    assert (resp.command_status, resp.sequence_number) == (S.ESME_RINVSRCADR, 9)
    await client.close()


async def test_bind_limit_one_trx_or_one_tx_rx_pair(gateway):
    account = await new_account(gateway)
    trx = await _bound(gateway, account)
    for cls in (BindTransceiver, BindTransmitter, BindReceiver):
        other = await RawClient.connect(*gateway.endpoints.smpp)
        resp = await other.bind(account["system_id"], account["password"], cls=cls)
        assert resp.command_status == S.ESME_RBINDFAIL, cls.__name__
        await other.close()
    await trx.close()
    await asyncio.sleep(0.1)
    tx = await _bound(gateway, account, cls=BindTransmitter)
    rx = await _bound(gateway, account, cls=BindReceiver)
    third = await RawClient.connect(*gateway.endpoints.smpp)
    resp = await third.bind(account["system_id"], account["password"], cls=BindTransmitter)
    assert resp.command_status == S.ESME_RBINDFAIL
    for c in (tx, rx, third):
        await c.close()


async def test_repeated_failed_binds_are_throttled(gateway):
    account = await new_account(gateway)
    statuses = []
    for _ in range(6):
        client = await RawClient.connect(*gateway.endpoints.smpp)
        statuses.append((await client.bind(account["system_id"], "wrongpw1")).command_status)
        await client.close()
    assert statuses[:5] == [S.ESME_RINVPASWD] * 5
    assert statuses[5] == S.ESME_RBINDTHROTTLED
    client = await RawClient.connect(*gateway.endpoints.smpp)
    # Even the right password waits out the cool-down: the address is blocked.
    resp = await client.bind(account["system_id"], account["password"])
    assert resp.command_status == S.ESME_RBINDTHROTTLED
    await client.close()


async def test_rate_limit_throttles_beyond_the_burst(make_gateway):
    gw = await make_gateway(default_throughput=5.0)
    account = await new_account(gw)
    client = await _bound(gw, account)
    for _ in range(12):
        await client.send(SubmitSm(**GOOD_SUBMIT))
    statuses = [(await client.read()).command_status for _ in range(12)]
    assert statuses.count(0) == 5
    assert statuses.count(S.ESME_RTHROTTLED) == 7
    await client.close()


async def test_window_throttles_beyond_outstanding_limit(make_gateway):
    # Five submits read in one turn: the first three fill the window before any commit.
    gw = await make_gateway(default_window=3)
    account = await new_account(gw)
    client = await _bound(gw, account)
    for _ in range(5):
        await client.send(SubmitSm(**GOOD_SUBMIT))
    statuses = [(await client.read()).command_status for _ in range(5)]
    assert sorted(statuses) == [0, 0, 0, S.ESME_RTHROTTLED, S.ESME_RTHROTTLED]
    await client.close()


async def test_connection_that_never_binds_is_closed(make_gateway):
    gw = await make_gateway(bind_timeout=0.5)
    client = await RawClient.connect(*gw.endpoints.smpp)
    assert await _closed(client, timeout=5)


async def test_idle_session_gets_enquire_link_and_silent_one_is_closed(make_gateway):
    gw = await make_gateway(enquire_link_interval=1.0, response_timeout=1.5)
    account = await new_account(gw)
    client = await _bound(gw, account)
    # The client's link answers the first probe while the test reads...
    await client.wait_received(CommandId.ENQUIRE_LINK, timeout=5)
    # ...then the test reads nothing, so nothing is answered: the next probe (after 1 s
    # idle) goes unanswered for 1.5 s and the session is dropped.
    await asyncio.sleep(4.0)
    assert await _closed(client, timeout=6)
    assert client.received.count(CommandId.ENQUIRE_LINK) == 2


async def test_session_is_unbound_at_its_maximum_age(make_gateway):
    gw = await make_gateway(session_max_age=1.0, enquire_link_interval=60.0)
    account = await new_account(gw)
    client = await _bound(gw, account)
    await client.wait_received(CommandId.UNBIND, timeout=5)  # raises if none comes
    assert client.received.count(CommandId.UNBIND) == 1
    assert await _closed(client, timeout=5)
    for _ in range(40):  # the gateway forgets the session once its side has closed too
        if not gw.sessions.bound(account["system_id"]):
            break
        await asyncio.sleep(0.05)
    assert gw.sessions.bound(account["system_id"]) == []


async def test_shutdown_unbinds_sessions(make_gateway):
    gw = await make_gateway()
    account = await new_account(gw)
    client = await _bound(gw, account)
    stopping = asyncio.create_task(gw.stop())
    # The client's link answers the unbind; the gateway stops once it is answered.
    await client.wait_received(CommandId.UNBIND, timeout=5)  # raises if none comes
    assert client.received.count(CommandId.UNBIND) == 1
    await asyncio.wait_for(stopping, 15)
    assert stopping.done() and stopping.exception() is None
    assert gw.sessions.connections == {}
