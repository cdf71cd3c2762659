"""Bound sessions and nodes, as the operator lists them: every session of the cluster
(all, or one account's), with its id, node, from where, as what, and whether over TLS
(known for this node's); every node with its state, heartbeat and sessions; and kicking
one session by its id, or an account's sessions, off every node (the account and
password operations can also --unbind as they change it)."""

from __future__ import annotations

from typing import Any

from gateway.admin.context import AdminContext
from gateway.admin.parsing import AdminError, AdminUsageError, shown
from store.tables import bound_sessions

# The longest session id there can be: the store's column ("<node>/<session number>").
_SESSION_ID_LENGTH = bound_sessions.c.id.type.length


async def list_bound(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    return await ctx.sessions.sessions(args.get("system_id"))


async def list_nodes(ctx: AdminContext, args: dict, actor: str) -> list[dict]:
    return await ctx.sessions.nodes()


async def kick(ctx: AdminContext, args: dict, actor: str) -> dict[str, Any]:
    """{"session_id": ID}: unbind that one session, on whichever node holds it;
    {"system_id": SID}: unbind every session of the account. Either may bind again."""
    has_session, has_account = "session_id" in args, "system_id" in args
    if has_session and has_account:
        raise AdminUsageError("give session_id (one session) or system_id (every session "
                              "of an account), not both")
    if has_session:
        return await _kick_session(ctx, args["session_id"], actor)
    if not has_account:
        raise AdminUsageError("missing argument 'session_id' (or 'system_id' for every "
                              "session of an account)")
    system_id = (await ctx.account(args))["system_id"]
    unbound = await ctx.sessions.kick(system_id)
    await ctx.audit.record(actor, "sessions.kick", system_id, None,
                           {"sessions_unbound": unbound})
    return {"system_id": system_id, "sessions_unbound": unbound}


async def _kick_session(ctx: AdminContext, session_id: Any, actor: str) -> dict[str, Any]:
    if not isinstance(session_id, str) or not session_id:
        raise AdminUsageError(f"session_id must be a session id such as 'gw1/12', got "
                              f"{shown(session_id)}")
    if len(session_id) > _SESSION_ID_LENGTH:
        raise AdminUsageError(f"session_id is at most {_SESSION_ID_LENGTH} characters, got "
                              f"{shown(session_id)}")
    kicked = await ctx.sessions.kick_session(session_id)
    if kicked is None:
        raise AdminError(f"no bound session {session_id!r} on any live node; "
                         "`smppgw admin sessions list` shows their ids")
    await ctx.audit.record(actor, "sessions.kick", kicked["system_id"], None,
                           {"session": session_id, "node": kicked["node"],
                            "sessions_unbound": 1})
    return {**kicked, "sessions_unbound": 1}
