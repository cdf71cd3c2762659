"""Bind throttling over real TCP (gateway/sessions/auth): strangers cannot lock an owner
out, concurrent guesses cannot slip past a limit, the queue of password checks is
bounded, and answer times do not tell which system_ids exist.

The unlisted guesser is a second loopback address (127.0.0.2); accounts list 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from gw_helpers import admin, new_account
from smpp_client import RawClient

from pdu.status import CommandStatus as S

OWNER_IP, STRANGER_IP = "127.0.0.1", "127.0.0.2"
# Room for the floods below, whatever the connection limits' defaults are.
MANY_CONNECTIONS = {"max_connections_per_ip": 5000, "max_connections": 20000}


async def connect(gw, local_ip: str = OWNER_IP) -> RawClient:
    reader, writer = await asyncio.open_connection(*gw.endpoints.smpp, local_addr=(local_ip, 0))
    return RawClient(reader, writer)


async def bind_status(gw, system_id: str, password: str, local_ip: str = OWNER_IP) -> int:
    client = await connect(gw, local_ip)
    try:
        return (await client.bind(system_id, password)).command_status
    finally:
        await client.close()


def password_checks(gw) -> float:
    """Argon2 verifications so far, as /metrics shows them."""
    return gw.metrics.registry.get_sample_value("smppgw_bind_password_checks_total") or 0.0


@pytest.mark.parametrize("guesses", [5, 50])
async def test_wrong_binds_from_an_unlisted_address_leave_the_owner_in(make_gateway, guesses):
    gw = await make_gateway()
    account = await new_account(gw, ips=(OWNER_IP,))
    statuses = [await bind_status(gw, account["system_id"], "wrongpw1", STRANGER_IP)
                for _ in range(guesses)]
    # The stranger is refused, then throttled on its own pair; nothing says the name exists.
    assert set(statuses[:5]) == {S.ESME_RBINDFAIL}
    assert set(statuses[5:]) <= {S.ESME_RBINDTHROTTLED}
    assert await bind_status(gw, account["system_id"], account["password"]) == S.ESME_ROK


async def test_concurrent_wrong_binds_from_an_unlisted_address_leave_the_owner_in(make_gateway):
    gw = await make_gateway(**MANY_CONNECTIONS)
    account = await new_account(gw, ips=(OWNER_IP,))
    guesses = [bind_status(gw, account["system_id"], f"wrong{n:03d}", STRANGER_IP)
               for n in range(100)]
    await asyncio.gather(*guesses)
    assert await bind_status(gw, account["system_id"], account["password"]) == S.ESME_ROK


async def test_concurrent_wrong_binds_for_one_pair_reach_at_most_its_limit(make_gateway):
    gw = await make_gateway(bind_fail_limit_pair=5, **MANY_CONNECTIONS)
    account = await new_account(gw, ips=(OWNER_IP,))
    clients = [await connect(gw) for _ in range(200)]
    before = password_checks(gw)
    responses = await asyncio.gather(*(c.bind(account["system_id"], f"wrong{n:03d}")
                                       for n, c in enumerate(clients)))
    for c in clients:
        await c.close()
    assert password_checks(gw) - before <= 5
    statuses = [r.command_status for r in responses]
    assert statuses.count(S.ESME_RINVPASWD) <= 5
    assert statuses.count(S.ESME_RBINDTHROTTLED) >= 195


async def test_a_client_opening_more_sessions_at_once_than_the_pair_limit_binds_them_all(
    make_gateway,
):
    """Kannel or a load tool opens its sessions together: binds in flight hold the pair's
    slots, but the ones beyond the limit wait for them to be judged instead of being
    throttled."""
    gw = await make_gateway(bind_fail_limit_pair=5, **MANY_CONNECTIONS)
    account = await new_account(gw, ips=(OWNER_IP,), settings={"bind_limit": 20})
    clients = [await connect(gw) for _ in range(12)]
    responses = await asyncio.gather(*(c.bind(account["system_id"], account["password"])
                                       for c in clients))
    for c in clients:
        await c.close()
    assert [r.command_status for r in responses] == [S.ESME_ROK] * 12


async def test_a_good_bind_resets_its_pair(make_gateway):
    gw = await make_gateway(bind_fail_limit_pair=3)
    account = await new_account(gw, ips=(OWNER_IP,))
    sid, password = account["system_id"], account["password"]
    for _ in range(2):
        assert await bind_status(gw, sid, "wrongpw1") == S.ESME_RINVPASWD
    assert await bind_status(gw, sid, password) == S.ESME_ROK
    await asyncio.sleep(0.1)  # the session has gone before the next bind
    for _ in range(2):
        assert await bind_status(gw, sid, "wrongpw1") == S.ESME_RINVPASWD
    assert await bind_status(gw, sid, password) == S.ESME_ROK


async def test_the_account_ceiling_counts_listed_addresses_only(make_gateway):
    gw = await make_gateway(bind_fail_limit_pair=100, bind_fail_limit_ip=100,
                            bind_fail_limit_account=3)
    account = await new_account(gw, ips=("127.0.0.0/24",))
    sid = account["system_id"]
    for _ in range(3):
        assert await bind_status(gw, sid, "wrongpw1", "127.0.0.9") == S.ESME_RINVPASWD
    # Past the ceiling the account is throttled from every listed address...
    assert await bind_status(gw, sid, account["password"]) == S.ESME_RBINDTHROTTLED
    other = await new_account(gw, ips=("127.0.0.0/24",))
    # ...but failures from an unlisted address would not have counted at all.
    for _ in range(10):
        assert await bind_status(gw, other["system_id"], "wrongpw1", "127.0.1.1") \
            == S.ESME_RBINDFAIL
    assert await bind_status(gw, other["system_id"], other["password"]) == S.ESME_ROK


async def test_password_checks_beyond_the_pending_bound_are_throttled_at_once(make_gateway):
    gw = await make_gateway(bind_checks_pending=2, bind_fail_limit_ip=10_000, **MANY_CONNECTIONS)
    clients = [await connect(gw) for _ in range(40)]
    before = password_checks(gw)

    async def timed_bind(n: int, client: RawClient) -> tuple[int, float]:
        start = time.perf_counter()
        resp = await client.bind(f"nobody{n:03d}", "whatever")
        return resp.command_status, time.perf_counter() - start

    answers = await asyncio.gather(*(timed_bind(n, c) for n, c in enumerate(clients)))
    for c in clients:
        await c.close()
    checked = password_checks(gw) - before
    assert checked <= 2 + 2  # the two Argon2 threads, and two waiting
    throttled = [t for status, t in answers if status == S.ESME_RBINDTHROTTLED]
    verified = [t for status, t in answers if status != S.ESME_RBINDTHROTTLED]
    assert len(throttled) >= 36 and len(verified) == checked
    # Refused without waiting for a check: sooner than the first check could answer.
    assert statistics.median(throttled) < min(verified)


async def test_a_pair_that_bound_before_is_served_during_a_flood(make_gateway):
    gw = await make_gateway(bind_checks_pending=1, bind_fail_limit_pair=10_000,
                            bind_fail_limit_ip=10_000, **MANY_CONNECTIONS)
    owner = await new_account(gw, ips=(OWNER_IP,), settings={"bind_limit": 10})
    sid, password = owner["system_id"], owner["password"]
    assert await bind_status(gw, sid, password) == S.ESME_ROK
    flooding = True
    flood_statuses: list[int] = []

    async def guesser(n: int) -> None:
        while flooding:
            flood_statuses.append(await bind_status(gw, f"guess{n}", "wrongpw1", STRANGER_IP))

    guessers = [asyncio.create_task(guesser(n)) for n in range(30)]
    try:
        async with asyncio.timeout(10):
            while flood_statuses.count(S.ESME_RBINDTHROTTLED) < 30:  # the queue is full
                await asyncio.sleep(0.01)
        owner_statuses = [await bind_status(gw, sid, password) for _ in range(5)]
    finally:
        flooding = False
        await asyncio.gather(*guessers)
    assert owner_statuses == [S.ESME_ROK] * 5


async def test_unknown_and_known_system_ids_answer_in_the_same_time(make_gateway):
    gw = await make_gateway(uniform_bind_failure=True, bind_fail_limit_pair=10_000,
                            bind_fail_limit_ip=10_000, bind_fail_limit_account=10_000)
    known = await new_account(gw, ips=(OWNER_IP,))
    suspended = await new_account(gw, ips=(OWNER_IP,))
    await admin(gw, "account.suspend", system_id=suspended["system_id"])
    elsewhere = await new_account(gw, ips=("192.0.2.1",))
    cases = {
        "wrong password": (known["system_id"], "wrongpw1"),
        "unknown system_id": ("smpp-nobody", "wrongpw1"),
        "suspended": (suspended["system_id"], suspended["password"]),
        "address not allowed": (elsewhere["system_id"], elsewhere["password"]),
    }
    names = list(cases)
    rounds: list[dict[str, float]] = []
    statuses: set[int] = set()
    for n in range(41):
        # Each round times every case back to back, in a rotating order, so a burst of
        # load on the box hits the cases alike; rounds are compared pairwise.
        took: dict[str, float] = {}
        for case in names[n % 4:] + names[:n % 4]:
            sid, password = cases[case]
            client = await connect(gw)
            start = time.perf_counter()
            resp = await client.bind(sid, password)
            took[case] = (time.perf_counter() - start) * 1000
            statuses.add(resp.command_status)
            await client.close()
        rounds.append(took)
    assert statuses == {S.ESME_RBINDFAIL}
    differences = {
        case: statistics.median(r[case] - r["wrong password"] for r in rounds)
        for case in names
    }
    assert all(abs(d) < 5.0 for d in differences.values()), differences
