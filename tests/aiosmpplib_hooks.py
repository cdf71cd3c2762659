"""An aiosmpplib hook that keeps what the ESME heard, for tests to assert on."""

from __future__ import annotations

import aiosmpplib


class Collector(aiosmpplib.AbstractHook):
    def __init__(self) -> None:
        self.resps: list = []
        self.dlrs: list = []
        self.errors: list = []
        self.sent: list[bytes] = []  # raw submit_sm PDUs as aiosmpplib put them on the wire

    async def sending(self, smpp_message, pdu, client_id):
        if isinstance(smpp_message, aiosmpplib.SubmitSm):
            self.sent.append(pdu)

    async def received(self, smpp_message, pdu, client_id):
        if isinstance(smpp_message, aiosmpplib.DeliverSm):
            self.dlrs.append(smpp_message)
        elif isinstance(smpp_message, aiosmpplib.SubmitSmResp):
            self.resps.append(smpp_message)

    async def send_error(self, smpp_message, error, client_id):
        if error is not None:
            self.errors.append(error)
