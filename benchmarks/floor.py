"""The floor (scenario 7): the least an SMPP server in Python and asyncio must do.

Each connection is a `LinkProtocol` around a `pdu.link.Link` in the SMSC role, as the
gateway's sessions are: the link frames, fully decodes every request, keeps the bind
state table and answers enquire_link, unbind and whatever the state forbids. The floor
adds only what a load needs: binds accepted, submit_sm answered with a fresh
message_id; no authentication, no store, no accounting, no timers. Whatever the
gateway measures can be read as a fraction of this, on the same machine and loop.

Run: ``python -m benchmarks.floor --port 0``; it prints ``floor: listening on
HOST:PORT`` and then ``floor: ready``, and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys

from gateway.link_protocol import LinkProtocol
from pdu.codec import CommandId
from pdu.link import BIND_STATE, Event, Link, LinkConfig, Request, Role
from pdu.status import CommandStatus

SYSTEM_ID = "floor"
# No bind time-out, no enquire_link of ours, no maximum age, no window: the floor does
# no more than the link's rules require.
CONFIG = LinkConfig(role=Role.SMSC, window_in=None, bind_timeout=None,
                    enquire_link_interval=None, max_age=None)


class FloorSession(LinkProtocol):
    """One connection: binds accepted, submit_sm answered, anything else refused."""

    def __init__(self, ids: itertools.count) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(Link(CONFIG, loop.time()))
        self._ids = ids

    def handle_event(self, event: Event) -> None:
        if type(event) is not Request:
            return
        pdu = event.pdu
        link = self.link
        # Answered inside the turn: the one write at its end carries the responses.
        if pdu.command_id == CommandId.SUBMIT_SM:
            link.respond(pdu, message_id=str(next(self._ids)))
        elif pdu.command_id in BIND_STATE:
            link.accept_bind(pdu, self.loop.time(), system_id=SYSTEM_ID)
        else:
            link.respond(pdu, CommandStatus.ESME_RINVCMDID)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    ids = itertools.count(1)
    server = await loop.create_server(lambda: FloorSession(ids), host, port, backlog=1024)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    print(f"floor: listening on {bound_host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("floor: ready", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    from benchmarks.loadgen import run

    run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
