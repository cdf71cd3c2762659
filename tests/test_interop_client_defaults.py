"""smpplib 2.2.4 and aiosmpplib 0.7.4 used as their READMEs show, with their default
source and destination TON/NPI, against an account whose enabled senders are 12345
(shortcode) and Test (alphanumeric).

Both libraries send TON 0 / NPI 0 for every address unless told otherwise (read in
their sources, and checked on the wire here through a relay):
- smpplib: `SubmitSM.source_addr_ton` etc. default to None and `_generate_int` writes a
  None field as one zero octet, so source and destination go as 0/0;
- aiosmpplib: `PhoneNumber(number)` defaults to `TON.UNKNOWN` / `NPI.UNKNOWN`, 0/0.
With lenient addressing (the default) each is accepted, normalised in history to the
sender's kind and to an international destination 1/1, and receipted; with the account
switched to strict, TON 0 is refused with ESME_RINVSRCTON.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import aiosmpplib
import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
from aiosmpplib_hooks import Collector
from gw_helpers import admin, history_statuses, new_account
from interop_helpers import SubmitTap, wait_until

SENDERS = [{"address": "12345", "kind": "shortcode"},
           {"address": "Test", "kind": "alphanumeric"}]
NORMALISED_SOURCE = {"12345": (3, 1), "Test": (5, 0)}
LONG_TEXT = ("A long message, split the way the client splits it. " * 8)[:400]
UCS2_TEXT = "Привет, мир! Ünïcödé ✓ 你好"
# (label, destination as the client writes it, text); the '+' is the gateway's to strip.
MESSAGES = [
    ("short", "33601020304", "Hello with the defaults"),
    ("long", "33601020304", LONG_TEXT),
    ("ucs2", "+33601020305", UCS2_TEXT),
]
# SMPP 3.4 5.1.3: "Invalid Source address TON" is 0x00000048 (0x0A is ESME_RINVSRCADR).
ESME_RINVSRCTON = 0x48
DEADLINE = 30.0


@pytest.fixture
async def tap(gateway):
    """The relay the clients connect through, recording what they put on the wire."""
    relay = SubmitTap(gateway.endpoints.smpp)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


async def _account(gateway) -> dict:
    account = await new_account(gateway, credits="100", senders=SENDERS)
    assert (account["addressing"], sorted(account["senders_enabled"])) == (
        "lenient", sorted(NORMALISED_SOURCE))
    return account


async def _switch_to_strict(gateway, account: dict) -> None:
    shown = await admin(gateway, "account.set", system_id=account["system_id"],
                        addressing="strict")
    assert shown["addressing"] == "strict"


async def _assert_history_normalised(gateway, tap: SubmitTap) -> None:
    """Every accepted submit: the client's 0/0 on the wire, the sender's kind and an
    international destination in history."""
    for submit in tap.accepted():
        assert (submit.source_ton, submit.source_npi, submit.dest_ton, submit.dest_npi) == (
            0, 0, 0, 0), submit
        row = await gateway.messages.get(int(submit.message_id))
        assert (row["source_addr"], row["source_ton"], row["source_npi"]) == (
            submit.source_addr, *NORMALISED_SOURCE[submit.source_addr])
        assert (row["dest_addr"], row["dest_ton"], row["dest_npi"]) == (
            submit.dest_addr.removeprefix("+"), 1, 1)


# --- smpplib: synchronous, run in a worker thread -----------------------------------


def _smpplib_client(host: str, port: int, account: dict) -> smpplib.client.Client:
    client = smpplib.client.Client(host, port, timeout=5, allow_unknown_opt_params=True)
    client.connect()
    client.bind_transceiver(system_id=account["system_id"], password=account["password"])
    return client


def _read_until(client: smpplib.client.Client, done, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"smpplib: timed out waiting for {what}")
        client.read_once()


def _smpplib_submit_all(host: str, port: int, account: dict):
    """Each message from each sender, split by smpplib.gsm.make_parts, as in the README
    (no TON/NPI given); returns [(sender, label, submit_sm_resp)] and the DLRs."""
    resps, dlrs, sent = [], [], []
    client = _smpplib_client(host, port, account)
    client.set_message_sent_handler(lambda pdu: resps.append(pdu))
    client.set_message_received_handler(lambda pdu: dlrs.append(pdu))
    try:
        for sender in NORMALISED_SOURCE:
            for label, destination, text in MESSAGES:
                parts, encoding_flag, msg_type_flag = smpplib.gsm.make_parts(text)
                for part in parts:
                    client.send_message(
                        source_addr=sender, destination_addr=destination,
                        short_message=part, data_coding=encoding_flag,
                        esm_class=msg_type_flag, registered_delivery=True,
                    )
                    sent.append((sender, label))
                    _read_until(client, lambda: len(resps) == len(sent), "submit_sm_resp")
        _read_until(client, lambda: len(dlrs) >= len(sent), f"{len(sent)} DLRs")
        client.unbind()
    finally:
        client.disconnect()
    return [(s, label, r) for (s, label), r in zip(sent, resps, strict=True)], dlrs


def _smpplib_refused_status(host: str, port: int, account: dict, sender: str) -> int | None:
    """The status smpplib reports for one default-TON submit: it raises PDUError with
    the command_status as its second argument; None if it raised nothing."""
    client = _smpplib_client(host, port, account)
    status = None
    try:
        client.send_message(source_addr=sender, destination_addr="33601020304",
                            short_message=b"strict", registered_delivery=True)
        try:
            client.read_once()
        except smpplib.exceptions.PDUError as exc:
            status = exc.args[1]
        client.unbind()
    finally:
        client.disconnect()
    return status


async def test_smpplib_defaults_are_accepted_normalised_and_receipted(gateway, tap):
    account = await _account(gateway)
    results, dlrs = await asyncio.to_thread(_smpplib_submit_all, "127.0.0.1", tap.port, account)
    # Per sender: one short, three UDH parts of the 400-character text, one UCS-2.
    assert [(s, label) for s, label, _ in results] == [
        (s, label) for s in NORMALISED_SOURCE for label in
        ("short", "long", "long", "long", "ucs2")]
    assert [r.status for _, _, r in results] == [0] * len(results)
    ids = [r.message_id.decode() for _, _, r in results]
    assert len(set(ids)) == len(ids)  # each client-split part has its own message_id
    receipted = []
    for dlr in dlrs:
        text_id = re.search(rb"\bid:(\S+)", dlr.short_message).group(1).decode()
        assert dlr.receipted_message_id.decode() == text_id
        assert b"stat:DELIVRD" in dlr.short_message
        receipted.append(text_id)
    assert sorted(receipted) == sorted(ids)
    assert [s.message_id for s in tap.accepted()] == ids
    await _assert_history_normalised(gateway, tap)
    # On the wire: the long text as UDH parts (esm_class 0x40, as make_parts sets it),
    # the UCS-2 text as data_coding 8, its destination with the '+' the gateway strips.
    assert [(s.esm_class, s.data_coding, s.dest_addr) for s in tap.accepted()] == [
        (0x00, 0x00, "33601020304"), *[(0x40, 0x00, "33601020304")] * 3,
        (0x00, 0x08, "+33601020305")] * 2


async def test_smpplib_default_ton_is_refused_under_strict_addressing(gateway, tap):
    account = await _account(gateway)
    await _switch_to_strict(gateway, account)
    for sender in NORMALISED_SOURCE:
        status = await asyncio.to_thread(
            _smpplib_refused_status, "127.0.0.1", tap.port, account, sender)
        assert status == smpplib.consts.SMPP_ESME_RINVSRCTON == ESME_RINVSRCTON
    assert [(s.source_ton, s.command_status, s.message_id) for s in tap.submits] == [
        (0, ESME_RINVSRCTON, None)] * 2
    assert await history_statuses(gateway, account["system_id"]) == {}


# --- aiosmpplib: on the test's loop -------------------------------------------------


async def _aiosmpplib_run(port: int, account: dict, messages, done) -> Collector:
    """An ESME as in the README: messages queued on its broker, then start(); runs
    until done(hook) or DEADLINE."""
    hook = Collector()
    esme = aiosmpplib.ESME(
        smsc_host="127.0.0.1", smsc_port=port, system_id=account["system_id"],
        password=account["password"], hook=hook, log_level=logging.WARNING,
    )
    for message in messages:
        await esme.broker.enqueue(message)
    task = asyncio.create_task(esme.start())
    try:
        await wait_until(lambda: done(hook) or task.done(), DEADLINE, "aiosmpplib")
        assert not task.done(), task
    finally:
        await esme.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return hook


async def test_aiosmpplib_defaults_are_accepted_normalised_and_receipted(gateway, tap):
    account = await _account(gateway)
    # aiosmpplib's default for a text longer than 254 octets (auto_message_payload=True)
    # is one submit_sm carrying message_payload: one message_id, one DLR, priced as the
    # segments the gateway cuts it into.
    messages = [
        aiosmpplib.SubmitSm(short_message=text, source=aiosmpplib.PhoneNumber(sender),
                            destination=aiosmpplib.PhoneNumber(destination),
                            log_id=f"{sender}-{label}")
        for sender in NORMALISED_SOURCE for label, destination, text in MESSAGES
    ]
    n = len(messages)
    hook = await _aiosmpplib_run(
        tap.port, account, messages, lambda h: len(h.resps) >= n and len(h.dlrs) >= n)
    assert not hook.errors
    ok = aiosmpplib.SmppCommandStatus.ESME_ROK
    assert [r.command_status for r in hook.resps] == [ok] * n
    sent_ids = {r.log_id: r.message_id for r in hook.resps}
    assert set(sent_ids) == {m.log_id for m in messages}
    assert len(set(sent_ids.values())) == n
    # aiosmpplib matched each receipt to its submit by the receipt's id.
    receipts = {d.log_id: d.parse_receipt() for d in hook.dlrs}
    assert {log_id: r["id"] for log_id, r in receipts.items()} == sent_ids
    assert {r["stat"] for r in receipts.values()} == {"DELIVRD"}
    assert sorted(s.message_id for s in tap.accepted()) == sorted(sent_ids.values())
    await _assert_history_normalised(gateway, tap)
    for sender in NORMALISED_SOURCE:
        long_row = await gateway.messages.get(int(sent_ids[f"{sender}-long"]))
        assert long_row["segments"] == 3
        ucs2_row = await gateway.messages.get(int(sent_ids[f"{sender}-ucs2"]))
        assert ucs2_row["data_coding"] == 0x08


async def test_aiosmpplib_default_ton_is_refused_under_strict_addressing(gateway, tap):
    account = await _account(gateway)
    await _switch_to_strict(gateway, account)
    messages = [
        aiosmpplib.SubmitSm(short_message="strict", source=aiosmpplib.PhoneNumber(sender),
                            destination=aiosmpplib.PhoneNumber("33601020304"),
                            log_id=f"strict-{sender}")
        for sender in NORMALISED_SOURCE
    ]
    hook = await _aiosmpplib_run(tap.port, account, messages, lambda h: len(h.resps) >= 2)
    assert {r.log_id: r.command_status for r in hook.resps} == {
        f"strict-{sender}": aiosmpplib.SmppCommandStatus.ESME_RINVSRCTON
        for sender in NORMALISED_SOURCE}
    assert aiosmpplib.SmppCommandStatus.ESME_RINVSRCTON.value == ESME_RINVSRCTON
    assert not hook.dlrs
    assert [(s.source_ton, s.command_status) for s in tap.submits] == [
        (0, ESME_RINVSRCTON)] * 2
    assert await history_statuses(gateway, account["system_id"]) == {}
