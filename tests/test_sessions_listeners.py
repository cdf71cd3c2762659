"""The session listeners (gateway/sessions/listeners) over real TCP: the TLS port with
its TLS 1.3 minimum, and a session flooding garbage PDUs while another keeps its
submit latency."""

from __future__ import annotations

import asyncio
import random
import ssl
import statistics
import time
from pathlib import Path

import pytest
import trustme
from gw_helpers import new_account
from smpp_client import RawClient

from pdu.codec import PDU_CLASSES, BindTransceiver, CommandId, SubmitSm
from pdu.status import CommandStatus as S

GOOD_SUBMIT = {"source_addr_ton": 5, "source_addr": "ovh123", "dest_addr_ton": 1,
               "dest_addr_npi": 1, "destination_addr": "33601020304", "short_message": b"hi"}


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_settings(ca: trustme.CA, tmp_path: Path) -> dict:
    """Settings for a TLS port serving a certificate for 127.0.0.1 signed by `ca`."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return {"tls_port": 0, "tls_cert": cert_path, "tls_key": key_path}


def _client_context(ca: trustme.CA, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if max_version is not None:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = max_version
    return context


async def test_tls_client_binds_and_submits(make_gateway, tls_settings, ca):
    gw = await make_gateway(**tls_settings)
    account = await new_account(gw)
    host, port = gw.endpoints.tls
    reader, writer = await asyncio.open_connection(host, port, ssl=_client_context(ca),
                                                   server_hostname="127.0.0.1")
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
    client = RawClient(reader, writer)
    assert (await client.bind(account["system_id"], account["password"])).command_status == 0
    assert (await client.request(SubmitSm(**GOOD_SUBMIT))).command_status == 0
    sessions = [s for s in gw.sessions.bound(account["system_id"])]
    assert [s.tls for s in sessions] == [True]
    await client.close()


async def test_tls12_only_client_is_refused_when_minimum_is_13(make_gateway, tls_settings, ca):
    gw = await make_gateway(**tls_settings)
    host, port = gw.endpoints.tls
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.open_connection(
            host, port, ssl=_client_context(ca, max_version=ssl.TLSVersion.TLSv1_2),
            server_hostname="127.0.0.1",
        )


FLOOD = 10_000


def _garbage_frames(n: int, seed: int = 1234) -> list[bytes]:
    """Frames of valid length with random request command ids (known and unknown) and
    random or truncated bodies, each of which the gateway must answer. unbind is left
    out (it would end the flooding session), and so are responses, which get no answer."""
    rng = random.Random(seed)
    ids = [cid for cid in PDU_CLASSES if cid != CommandId.UNBIND and not cid & 0x80000000]
    ids += [0x00000777, 0x00FFFFFF, 0x7FFFFFFF]
    frames = []
    for i in range(n):
        body = rng.randbytes(rng.randint(0, 120))
        cid = rng.choice(ids)
        status = rng.choice([0, 0, 0, rng.getrandbits(32)])
        frames.append((16 + len(body)).to_bytes(4, "big") + cid.to_bytes(4, "big")
                      + status.to_bytes(4, "big") + (i + 1).to_bytes(4, "big") + body)
    return frames


async def _submit_loop(client: RawClient, stop: asyncio.Event, latencies: list, statuses: list):
    while not stop.is_set():
        started = time.perf_counter()
        resp = await client.request(SubmitSm(**GOOD_SUBMIT))
        latencies.append(time.perf_counter() - started)
        statuses.append(resp.command_status)


async def test_garbage_flood_harms_no_other_session(make_gateway):
    gw = await make_gateway(default_window=1000)
    victim_account = await new_account(gw, credits="100000")
    flood_account = await new_account(gw, credits="100000")
    victim = await RawClient.connect(*gw.endpoints.smpp)
    assert (await victim.bind(victim_account["system_id"],
                              victim_account["password"])).command_status == 0
    baseline: list[float] = []
    statuses: list[int] = []
    stop = asyncio.Event()
    quiet = asyncio.create_task(_submit_loop(victim, stop, baseline, statuses))
    await asyncio.sleep(1.0)
    stop.set()
    await quiet

    flooder = await RawClient.connect(*gw.endpoints.smpp)
    assert (await flooder.bind(flood_account["system_id"], flood_account["password"],
                               cls=BindTransceiver)).command_status == 0
    answers = 0

    async def drain() -> None:
        nonlocal answers
        while answers < FLOOD:
            await flooder.read(timeout=30)
            answers += 1

    reader = asyncio.create_task(drain())
    during: list[float] = []
    stop = asyncio.Event()
    busy = asyncio.create_task(_submit_loop(victim, stop, during, statuses))
    frames = _garbage_frames(FLOOD)
    # In bursts of 100, so the victim keeps submitting all through the flood.
    for i in range(0, FLOOD, 100):
        await flooder.send_raw(b"".join(frames[i : i + 100]))
        await asyncio.sleep(0.01)
    await asyncio.wait_for(reader, 60)
    stop.set()
    await busy

    assert answers == FLOOD  # every garbage PDU got an answer (a nack or a response)
    assert set(statuses) == {0}
    assert gw.endpoints.smpp and (await victim.request(SubmitSm(**GOOD_SUBMIT))).command_status == 0
    print(f"\nvictim submit latency p50 quiet {statistics.median(baseline) * 1000:.2f} ms, "
          f"during flood {statistics.median(during) * 1000:.2f} ms "
          f"({len(baseline)} / {len(during)} submits)")
    await flooder.close()
    await victim.close()


def test_status_of_flooded_unknown_command_is_invalid_command_id():
    # The table-driven session tests pin each status; this guards the flood's premise.
    assert S.ESME_RINVCMDID == 3
