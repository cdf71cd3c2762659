"""outbind (gateway/sessions/outbind): the gateway dials an account's listening ESME
when receipts wait for it.

The ESME here is a plain asyncio server speaking SMPP through the test codec client:
it gets outbind with the credentials the operator configured, binds as a receiver on
that connection, and receives the waiting receipt. Only the account that owns the
outbind address may bind there; a refused or silent ESME is dialled again later.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from delivery_helpers import ready_account, submit_pdu, wait_for
from gw_helpers import AdminFailed, admin
from smpp_client import RawClient

from pdu.codec import (
    BindReceiver,
    BindTransmitter,
    CommandId,
    DeliverSm,
    DeliverSmResp,
    Outbind,
    Unbind,
)
from pdu.receipt import parse_receipt
from pdu.status import CommandStatus as S


class ListeningEsme:
    """An ESME that waits for outbind; `script` decides how it binds each time."""

    def __init__(self, system_id: str, password: str) -> None:
        self.system_id, self.password = system_id, password
        self.outbinds: list[Outbind] = []
        self.bind_statuses: list[int] = []
        self.receipts: list[DeliverSm] = []
        self.wrong_first = False
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = RawClient(reader, writer)
        try:
            outbind = await client.read(timeout=5)
            assert isinstance(outbind, Outbind)
            self.outbinds.append(outbind)
            system_id = self.system_id
            if self.wrong_first and len(self.outbinds) == 1:
                system_id = "somebody-else"
            resp = await client.request(BindReceiver(system_id=system_id, password=self.password))
            self.bind_statuses.append(resp.command_status)
            if resp.command_status:
                return
            while True:
                pdu = await client.read(timeout=30)
                if pdu.command_id == CommandId.DELIVER_SM:
                    self.receipts.append(pdu)
                    await client.send(DeliverSmResp(sequence_number=pdu.sequence_number))
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            await client.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_waiting_receipt_is_delivered_through_outbind(gateway):
    account = await ready_account(gateway)
    sid = account["system_id"]
    esme = ListeningEsme(sid, account["password"])
    esme.wrong_first = True  # a first bind for another account is refused, then retried
    port = await esme.start()
    try:
        shown = await admin(gateway, "account.set", system_id=sid,
                            outbind_address=f"127.0.0.1:{port}", outbind_system_id="gwout",
                            outbind_password="secret1")
        assert shown["outbind_address"] == f"127.0.0.1:{port}"
        assert "outbind_password" not in shown  # a credential is never shown back
        sender = await RawClient.connect(*gateway.endpoints.smpp)
        bound = await sender.bind(sid, account["password"], cls=BindTransmitter)
        assert bound.command_status == 0
        resp = await sender.request(submit_pdu("33612345678", "call me back"))
        assert resp.command_status == 0
        await wait_for(lambda: esme.receipts, 20, "the receipt through outbind")
        await sender.request(Unbind())
        await sender.close()
    finally:
        await esme.stop()
    assert [(o.system_id, o.password) for o in esme.outbinds[:2]] == [("gwout", "secret1")] * 2
    assert esme.bind_statuses[:2] == [S.ESME_RINVSYSID, S.ESME_ROK]
    (receipt,) = esme.receipts
    assert parse_receipt(receipt.short_message).message_id == resp.message_id
    await wait_for(lambda: gateway.deliveries.in_flight == 0, 5, "the delivery acknowledged")
    now = datetime.now(UTC)
    assert await gateway.messages.due_deliveries(gateway.accounts.get(sid).id, now, 10) == []


async def test_no_outbind_address_means_the_receipt_waits_for_a_bind(gateway):
    account = await ready_account(gateway)
    sender = await RawClient.connect(*gateway.endpoints.smpp)
    await sender.bind(account["system_id"], account["password"], cls=BindTransmitter)
    assert (await sender.request(submit_pdu("33612345678", "later"))).command_status == 0
    await asyncio.sleep(0.5)
    await sender.close()
    assert gateway.outbinder.attempts == 0


async def test_outbind_address_is_validated(gateway):
    account = await ready_account(gateway)
    for bad in ("nohost", "host:99999", "host:port", ":2775"):
        try:
            await admin(gateway, "account.set", system_id=account["system_id"],
                        outbind_address=bad)
        except AdminFailed as exc:
            assert "outbind_address" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
