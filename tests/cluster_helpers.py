"""Two (or more) real `smppgw serve` nodes on one PostgreSQL database, as the cluster
tests start them, and what those tests do with a node: its admin socket, a bind."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from delivery_helpers import Esme, GatewayProcess
from smpp_client import RawClient

from pdu.codec import BindTransceiver
from pdu.status import CommandStatus as S
from store.engine import make_engine
from store.invariants import ledger_violations

# Within what a change made on one node must be seen on the other (issue 13).
PROPAGATION = 2.0


@dataclass
class Node:
    process: GatewayProcess

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.process.endpoint

    @property
    def admin_socket(self) -> str:
        return str(self.process.state_dir / "admin.sock")

    async def admin(self, *args: str, check: bool = True) -> dict:
        """`smppgw admin ARGS --json` on this node's socket; its parsed output."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "admin", "--socket", self.admin_socket,
            *args, "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if check:
            assert proc.returncode == 0, err.decode()
        return json.loads(out) if out.strip() else {"error": err.decode()}

    async def bind(self, system_id: str, password: str, cls=BindTransceiver) -> int:
        """The status of a bind (then unbound and closed)."""
        client = await RawClient.connect(*self.endpoint)
        try:
            return (await client.bind(system_id, password, cls=cls)).command_status
        finally:
            await client.close()


def node_env(database_url: str, node_id: int, **extra: str) -> dict[str, str]:
    return {"SMPPGW_DATABASE_URL": database_url, "SMPPGW_NODE_ID": str(node_id),
            "SMPPGW_CREATE_DEMO_ACCOUNT": "false",
            # The tests poll with binds that fail until a change arrives.
            "SMPPGW_BIND_FAIL_LIMIT_PAIR": "1000", "SMPPGW_BIND_FAIL_LIMIT_IP": "1000",
            **extra}


async def start_node(database_url: str, state_dir: Path, node_id: int, **extra: str) -> Node:
    # In a thread: the test's loop keeps serving whatever the node connects to.
    process = GatewayProcess(state_dir, node_env(database_url, node_id, **extra))
    return Node(await asyncio.to_thread(process.start))


async def bind_when_known(node: Node, account: dict, bind_cls=BindTransceiver,
                          within: float = 5.0) -> Esme:
    """An Esme bound on `node` once the account created on another node has reached it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        status = await node.bind(account["system_id"], account["password"])
        if status == S.ESME_ROK:
            return await Esme.bind(*node.endpoint, account, bind_cls=bind_cls)
        assert status == S.ESME_RINVSYSID, status
        assert loop.time() < deadline, "the account never reached the node"
        await asyncio.sleep(0.1)


async def books(database_url: str) -> list:
    """What store.invariants finds wrong with the ledger of the shared database."""
    engine = make_engine(database_url)
    try:
        return await ledger_violations(engine)
    finally:
        await engine.dispose()
