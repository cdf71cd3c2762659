"""The Prometheus endpoint (gateway/metrics) scraped over HTTP while a customer binds
and submits: the session, PDU and credit counters move by what happened."""

from __future__ import annotations

import asyncio

from gw_helpers import new_account
from smpp_client import RawClient

from pdu.codec import BindTransceiver, SubmitSm


async def _scrape(gw) -> dict[str, float]:
    reader, writer = await asyncio.open_connection(*gw.endpoints.metrics)
    writer.write(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = await reader.read()
    writer.close()
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200")
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_metrics_counters_move(gateway):
    account = await new_account(gateway)
    before = await _scrape(gateway)
    client = await RawClient.connect(*gateway.endpoints.smpp)
    await client.bind(account["system_id"], account["password"], cls=BindTransceiver)
    during = await _scrape(gateway)
    for _ in range(3):
        resp = await client.request(SubmitSm(source_addr="ovh", source_addr_ton=5,
                                             destination_addr="33601020304", dest_addr_ton=1,
                                             dest_addr_npi=1, short_message=b"m"))
        assert resp.command_status == 0
    after = await _scrape(gateway)
    await client.close()
    bound = 'smppgw_sessions_bound{bind_type="transceiver"}'
    assert before[bound] == 0 and during[bound] == 1
    submits = 'smppgw_pdus_total{command="submit_sm",direction="in",status="ESME_ROK"}'
    assert after[submits] - before.get(submits, 0) == 3
    resps = 'smppgw_pdus_total{command="submit_sm_resp",direction="out",status="ESME_ROK"}'
    assert after[resps] == 3
    assert after["smppgw_credits_debited_total"] - before["smppgw_credits_debited_total"] == 3
