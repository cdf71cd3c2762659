"""Every admin operation by name: one table for request/answer operations, one for
streams. Each operation is `async def op(ctx, args, actor)` in the module of its area;
a stream is an async generator of the messages the server writes one by one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from gateway.admin.context import AdminContext
from gateway.admin.ops import (
    accounts,
    audit,
    credits,
    customers,
    history,
    ips,
    ledger,
    numbers,
    passwords,
    rates,
    senders,
    sessions,
    stop_list,
    upstreams,
)

Op = Callable[[AdminContext, dict, str], Awaitable[Any]]
Stream = Callable[[AdminContext, dict], AsyncIterator[dict[str, Any]]]

OPS: dict[str, Op] = {
    "account.create": accounts.create,
    "account.show": accounts.show,
    "account.list": accounts.list_all,
    "account.set": accounts.set_settings,
    "account.suspend": accounts.suspend,
    "account.resume": accounts.resume,
    "account.delete": accounts.delete,
    "password.rotate": passwords.rotate,
    "ip.add": ips.add,
    "ip.remove": ips.remove,
    "ip.list": ips.list_all,
    "sender.add": senders.add,
    "sender.list": senders.list_all,
    "sender.set_state": senders.set_state,
    "sender.remove": senders.remove,
    "sender.pending": senders.pending,
    "rate.set": rates.set_rate,
    "rate.list": rates.list_all,
    "rate.remove": rates.remove,
    "rate.quote": rates.quote,
    "credits.add": credits.add,
    "credits.transfer": credits.transfer,
    "credits.auto_topup": credits.auto_topup,
    "credits.alert": credits.alert,
    "balance.show": ledger.balance,
    "ledger.list": ledger.entries,
    "ledger.check": ledger.check,
    "history.query": history.query,
    "history.delete": history.delete,
    "stop.add": stop_list.add,
    "stop.list": stop_list.list_all,
    "stop.remove": stop_list.remove,
    "number.add": numbers.add,
    "number.remove": numbers.remove,
    "number.list": numbers.list_all,
    "sessions.list": sessions.list_bound,
    "sessions.kick": sessions.kick,
    "nodes.list": sessions.list_nodes,
    "audit.list": audit.list_entries,
    "upstream.list": upstreams.list_all,
    "upstream.add": upstreams.add,
    "upstream.set": upstreams.set_settings,
    "upstream.remove": upstreams.remove,
    "upstream.start": upstreams.start,
    "upstream.stop": upstreams.stop,
    "route.list": upstreams.routes,
    "route.set": upstreams.set_route,
    "route.remove": upstreams.remove_route,
    "customer.create": customers.create,
    "customer.add_account": customers.add_account,
    "customer.password_reset": customers.reset_password,
    "customer.list": customers.list_all,
}

STREAMS: dict[str, Stream] = {
    "history.export": history.export,
}
