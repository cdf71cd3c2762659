"""Bind checks over real TCP (gateway/sessions/auth): a refused bind answers the status
the SMPP 3.4 specification gives for its reason, or one uniform status when the
operator hides reasons, and writes nothing to the store."""

from __future__ import annotations

import pytest
from gw_helpers import new_account
from smpp_client import RawClient
from sqlalchemy import func, select

from pdu.status import CommandStatus as S
from store import tables


async def _counts(gw) -> dict[str, int]:
    out = {}
    async with gw.engine.connect() as conn:
        for table in (tables.messages, tables.ledger, tables.audit_log, tables.deliveries):
            out[table.name] = (await conn.execute(select(func.count()).select_from(table))).scalar()
    return out


BIND_REFUSALS = [
    ("wrong password", "good_sid", "nope1234", S.ESME_RINVPASWD),
    ("unknown system_id", "smpp-nobody", "whatever", S.ESME_RINVSYSID),
]


@pytest.mark.parametrize("case,sid,password,status", BIND_REFUSALS, ids=[c[0] for c in BIND_REFUSALS])
async def test_bind_refusals_write_nothing(gateway, case, sid, password, status):
    account = await new_account(gateway)
    before = await _counts(gateway)
    client = await RawClient.connect(*gateway.endpoints.smpp)
    resp = await client.bind(account["system_id"] if sid == "good_sid" else sid, password)
    await client.close()
    assert resp.command_status == status
    assert await _counts(gateway) == before


async def test_bind_from_unlisted_ip_is_refused(gateway):
    account = await new_account(gateway, ips=("10.9.8.7",))
    before = await _counts(gateway)
    client = await RawClient.connect(*gateway.endpoints.smpp)
    resp = await client.bind(account["system_id"], account["password"])
    await client.close()
    assert resp.command_status == S.ESME_RBINDFAIL
    assert await _counts(gateway) == before


async def test_uniform_bind_failure_hides_the_reason(make_gateway):
    gw = await make_gateway(uniform_bind_failure=True)
    good = await new_account(gw)
    elsewhere = await new_account(gw, ips=("192.0.2.1",))
    attempts = [
        (good["system_id"], "wrongpw1"),
        ("smpp-nobody", "x"),
        (elsewhere["system_id"], elsewhere["password"]),
    ]
    for sid, password in attempts:
        client = await RawClient.connect(*gw.endpoints.smpp)
        resp = await client.bind(sid, password)
        await client.close()
        assert resp.command_status == S.ESME_RBINDFAIL
