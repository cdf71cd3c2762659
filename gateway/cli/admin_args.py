"""The `smppgw admin` command line: its argparse tree, and how parsed arguments become
the one JSON request (op and args) sent to the admin socket.

Flags mirror the admin operations and their argument names (gateway.admin.ops).
`--json` and `--socket` are taken anywhere: after `admin`, after a group or after the
command (a parent parser whose defaults are SUPPRESS, so a later level never resets
what an earlier one set).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from config.upstreams import BIND_MODES, CONNECTOR_TYPES, LONG_MESSAGE_MODES

# `account set` / `account create` flags -> admin setting names.
SETTING_FLAGS = (
    "window", "throughput", "bind_limit", "gsm_packed", "max_segments", "keep_bodies",
    "vendor_tlvs", "dlr_retention_days", "stop_mode", "addressing", "outbind_address",
    "outbind_system_id", "outbind_password",
)
HISTORY_FILTERS = ("since", "until", "sender", "receiver", "status", "message_id", "direction")
# `upstream add|set` flags, named as upstream.add/upstream.set take them (snake_case).
UPSTREAM_KEYS = (
    "type", "host", "port", "system_id", "password", "bind", "tls", "window", "throughput",
    "long_messages", "system_type", "reconnect_min", "reconnect_max", "latency_ms", "mix",
    "nodes",
)
# How `route set|remove` spells the route of every destination (sent as "").
DEFAULT_ROUTE = "default"


class CommandLineError(Exception):
    """A command line argparse let through but that means nothing (exit 2)."""


def _settings_from(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: getattr(args, name) for name in SETTING_FLAGS if getattr(args, name, None) is not None
    }


def _sender_spec(text: str) -> dict[str, str]:
    """'ovh123' or 'ovh123:alphanumeric' (kind after the last colon)."""
    address, sep, kind = text.rpartition(":")
    if sep and kind in ("alphanumeric", "shortcode", "numeric"):
        return {"address": address, "kind": kind}
    return {"address": text}


def _history_filters(args: argparse.Namespace) -> dict[str, Any]:
    body = {k: getattr(args, k) for k in HISTORY_FILTERS if getattr(args, k, None) is not None}
    if getattr(args, "system_id", None):
        body["system_id"] = args.system_id
    return body


def admin_request(args: argparse.Namespace) -> tuple[str, dict]:
    """The (op, args) of the one request a parsed `smppgw admin` command line makes."""
    group, action = args.group, getattr(args, "action", None)
    if group == "account":
        if action == "create":
            body: dict[str, Any] = {"allowed_ips": args.allow_ip or []}
            if args.credits is not None:
                body["credits"] = args.credits
            if args.system_id:
                body["system_id"] = args.system_id
            if args.contact_email:
                body["contact_email"] = args.contact_email
            if args.sender:
                body["senders"] = [_sender_spec(s) for s in args.sender]
            settings = _settings_from(args)
            if settings:
                body["settings"] = settings
            return "account.create", body
        if action == "list":
            return "account.list", {}
        if action == "set":
            body = {"system_id": args.system_id, **_settings_from(args)}
            if args.contact_email is not None:
                body["contact_email"] = args.contact_email
            return "account.set", body
        if action == "suspend":
            return "account.suspend", {"system_id": args.system_id, "unbind": args.unbind}
        if action == "delete":
            body = {"system_id": args.system_id}
            if args.forfeit_balance:
                body["forfeit_balance"] = True
            return "account.delete", body
        return f"account.{action}", {"system_id": args.system_id}
    if group == "password":
        return "password.rotate", {"system_id": args.system_id, "unbind": args.unbind}
    if group == "ip":
        if action == "list":
            return "ip.list", {"system_id": args.system_id}
        return f"ip.{action}", {"system_id": args.system_id, "ip": args.ip}
    if group == "sender":
        body = {"system_id": args.system_id}
        if action == "add":
            body.update(sender=args.sender, kind=args.kind, state=args.state,
                        comment=args.comment)
        elif action == "set-state":
            body.update(sender=args.sender, state=args.state, comment=args.comment)
            return "sender.set_state", body
        elif action == "remove":
            body["sender"] = args.sender
        return f"sender.{action}", body
    if group == "rate":
        body = {"system_id": args.account} if getattr(args, "account", None) else {}
        if action == "set":
            body.update(prefix=args.prefix, price=args.price)
        elif action == "remove":
            body["prefix"] = args.prefix
        elif action == "quote":
            return "rate.quote", {"system_id": args.system_id, "destination": args.destination}
        return f"rate.{action}", body
    if group == "credits":
        if action == "add":
            body = {"system_id": args.system_id, "amount": args.amount}
            if args.note:
                body["note"] = args.note
            return "credits.add", body
        if action == "transfer":
            return "credits.transfer", {"from": args.source, "to": args.target,
                                        "amount": args.amount}
        if action == "auto-topup":
            body = {"system_id": args.system_id, "off": args.off}
            for key in ("threshold", "amount", "monthly_cap"):
                if getattr(args, key) is not None:
                    body[key] = getattr(args, key)
            return "credits.auto_topup", body
        body = {"system_id": args.system_id, "off": args.off}
        if args.threshold is not None:
            body["threshold"] = args.threshold
        return "credits.alert", body
    if group == "balance":
        return "balance.show", {"system_id": args.system_id}
    if group == "ledger":
        if action == "check":
            return "ledger.check", {}
        return "ledger.list", {"system_id": args.system_id, "limit": args.limit}
    if group == "history":
        if action == "delete":
            return "history.delete", {"system_id": args.system_id,
                                      "message_ids": args.message_ids}
        body = _history_filters(args)
        if action == "query":
            body["limit"] = args.limit
            if args.after_id is not None:
                body["after_id"] = args.after_id
            return "history.query", body
        return "history.export", body
    if group == "stop":
        body = {"system_id": args.system_id}
        if action in ("add", "remove"):
            body["destination"] = args.destination
        if action == "add" and args.note:
            body["note"] = args.note
        return f"stop.{action}", body
    if group == "sessions":
        return _sessions_request(args)
    if group == "upstream":
        return _upstream_request(args)
    if group == "route":
        return _route_request(args)
    if group == "number":
        body = {"system_id": args.system_id} if args.system_id else {}
        if action in ("add", "remove"):
            body["number"] = args.number
        return f"number.{action}", body
    if group == "nodes":
        return "nodes.list", {}
    if group == "customer":
        if action == "create":
            body = {"email": args.email, "operator": args.operator,
                    "accounts": args.account or []}
            if args.contact_email:
                body["contact_email"] = args.contact_email
            return "customer.create", body
        if action == "add-account":
            return "customer.add_account", {"email": args.email, "system_id": args.system_id}
        if action == "password":
            return "customer.password_reset", {"email": args.email}
        return "customer.list", {}
    if group == "audit":
        body = {"limit": args.limit}
        if args.target:
            body["target"] = args.target
        if args.action_filter:
            body["action"] = args.action_filter
        return "audit.list", body
    raise CommandLineError(f"unknown command {group} {action}")


def _sessions_request(args: argparse.Namespace) -> tuple[str, dict]:
    """`sessions [SID]`, `sessions list [SID]`, `sessions kick ID`, `sessions kick
    --account SID` (the bare forms list, as before there was a kick)."""
    words = list(args.words)
    verb = words.pop(0) if words and words[0] in ("list", "kick") else "list"
    if verb == "kick":
        if args.account and words:
            raise CommandLineError("sessions kick: give a session ID or --account SID, "
                                   "not both")
        if args.account:
            return "sessions.kick", {"system_id": args.account}
        if len(words) != 1:
            raise CommandLineError("sessions kick: give one session ID (as `sessions "
                                   "list` shows it) or --account SID")
        return "sessions.kick", {"session_id": words[0]}
    if args.account:
        raise CommandLineError("--account goes with `sessions kick`; "
                               "`sessions list SID` lists one account")
    if len(words) > 1:
        raise CommandLineError(f"sessions list takes at most one account, got {words}")
    return "sessions.list", {"system_id": words[0]} if words else {}


def _upstream_request(args: argparse.Namespace) -> tuple[str, dict]:
    action = args.action
    if action == "list":
        return "upstream.list", {}
    body: dict[str, Any] = {"name": args.name}
    if action in ("add", "set"):
        if args.password_stdin:
            # One line, as `docker login --password-stdin`: the newline is not part of it.
            body["password"] = sys.stdin.readline().rstrip("\r\n")
        for key in UPSTREAM_KEYS:
            value = getattr(args, key, None)
            if value is not None and key not in body:
                body[key] = value
    return f"upstream.{action}", body


def _route_request(args: argparse.Namespace) -> tuple[str, dict]:
    if args.action == "list":
        return "route.list", {}
    prefix = "" if args.prefix == DEFAULT_ROUTE else args.prefix
    body: dict[str, Any] = {"prefix": prefix}
    if args.action == "set":
        body["connectors"] = list(args.connectors)
    if args.account:
        body["account"] = args.account
    return f"route.{args.action}", body


def add_admin_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `admin` and its command groups to the top-level subcommands; returns it."""
    admin = commands.add_parser(
        "admin", parents=[_global_flags(argparse.SUPPRESS)],
        help="manage accounts, upstreams and routes through the admin socket",
        description="Exit codes: 0 done, 1 refused by the gateway (unknown account, "
                    "insufficient credits...), 2 bad arguments (found here or by the "
                    "gateway), 3 admin socket unreachable.",
    )
    admin.set_defaults(json=False, socket=None)
    # Every group and command takes --json/--socket too; SUPPRESS keeps a value given
    # earlier on the line when a later level does not repeat it.
    common = _global_flags(argparse.SUPPRESS)
    socket_only = _global_flags(argparse.SUPPRESS, json=False)
    groups = _Groups(admin.add_subparsers(dest="group", required=True), common)

    account = groups.add_parser("account", help="accounts").add_subparsers(
        dest="action", required=True
    )
    create = account.add_parser("create", parents=[common], help="create an account")
    create.add_argument("--credits", help="initial credits, e.g. 100 or 12.50")
    create.add_argument("--allow-ip", action="append", help="allowed IP or CIDR (repeatable)")
    create.add_argument("--system-id", help="choose the system_id instead of generating one")
    create.add_argument("--contact-email")
    create.add_argument("--sender", action="append",
                        help="enabled sender, e.g. ovh123 or 12345:shortcode (repeatable)")
    _setting_flags(create)
    show = account.add_parser("show", parents=[common], help="show one account")
    show.add_argument("system_id")
    account.add_parser("list", parents=[common], help="list accounts")
    set_ = account.add_parser("set", parents=[common], help="change per-account settings")
    set_.add_argument("system_id")
    set_.add_argument("--contact-email", help="contact e-mail ('' to clear)")
    _setting_flags(set_)
    suspend = account.add_parser("suspend", parents=[common], help="refuse new binds")
    suspend.add_argument("system_id")
    suspend.add_argument("--unbind", action="store_true", help="also unbind its sessions")
    resume = account.add_parser("resume", parents=[common], help="allow binds again")
    resume.add_argument("system_id")
    delete = account.add_parser(
        "delete", parents=[common], help="delete an account (kept for the books)",
        description="Unbinds the account's sessions and deletes it: it can no longer bind, "
                    "and its system_id is never given again. Refused while messages are in "
                    "flight (MT waiting for an upstream or its final state, receipts or MOs "
                    "waiting for the customer) and while the balance is not zero (transfer "
                    "it first, or --forfeit-balance). Its history, ledger and audit rows are "
                    "kept: a soft delete that frees nothing but its inbound numbers and its "
                    "web panel owners.",
    )
    delete.add_argument("system_id")
    delete.add_argument("--yes", action="store_true",
                        help="do not ask for confirmation (needed without a terminal)")
    delete.add_argument("--forfeit-balance", action="store_true",
                        help="write the remaining balance off (an 'adjust' ledger row)")

    password = groups.add_parser("password", help="passwords").add_subparsers(
        dest="action", required=True
    )
    rotate = password.add_parser(
        "rotate", parents=[common],
        help="generate a new password (and e-mail it to the contact when SMTP is set)",
    )
    rotate.add_argument("system_id")
    rotate.add_argument("--unbind", action="store_true", help="unbind the account's sessions")

    ip = groups.add_parser("ip", help="allowed IP addresses").add_subparsers(
        dest="action", required=True
    )
    for action in ("add", "remove"):
        p = ip.add_parser(action, parents=[common], help=f"{action} an allowed IP or CIDR")
        p.add_argument("system_id")
        p.add_argument("ip")
    ip_list = ip.add_parser("list", parents=[common], help="list allowed IPs")
    ip_list.add_argument("system_id")

    sender = groups.add_parser("sender", help="sender addresses").add_subparsers(
        dest="action", required=True
    )
    s_add = sender.add_parser("add", parents=[common], help="add a sender (pending by default)")
    s_add.add_argument("system_id")
    s_add.add_argument("sender")
    s_add.add_argument("--kind", choices=("alphanumeric", "shortcode", "numeric"))
    s_add.add_argument("--state", choices=("pending", "enabled", "disabled", "refused"))
    s_add.add_argument("--comment")
    s_list = sender.add_parser("list", parents=[common], help="list an account's senders")
    s_list.add_argument("system_id")
    s_state = sender.add_parser("set-state", parents=[common], help="enable, disable, refuse")
    s_state.add_argument("system_id")
    s_state.add_argument("sender")
    s_state.add_argument("state", choices=("pending", "enabled", "disabled", "refused"))
    s_state.add_argument("--comment")
    s_remove = sender.add_parser("remove", parents=[common], help="remove a sender")
    s_remove.add_argument("system_id")
    s_remove.add_argument("sender")

    rate = groups.add_parser("rate", help="prices per destination prefix").add_subparsers(
        dest="action", required=True
    )
    r_set = rate.add_parser("set", parents=[common], help="set credits per segment")
    r_set.add_argument("prefix", help="destination prefix, e.g. 33 or 336")
    r_set.add_argument("price", help="credits per segment, e.g. 0.75")
    r_set.add_argument("--account", help="an account's override instead of the global rate")
    r_list = rate.add_parser("list", parents=[common], help="list rates")
    r_list.add_argument("--account", help="an account's overrides instead of the global table")
    r_remove = rate.add_parser("remove", parents=[common], help="remove a rate")
    r_remove.add_argument("prefix")
    r_remove.add_argument("--account")
    r_quote = rate.add_parser("quote", parents=[common], help="price of one segment")
    r_quote.add_argument("system_id")
    r_quote.add_argument("destination")

    credits = groups.add_parser("credits", help="credits").add_subparsers(
        dest="action", required=True
    )
    add = credits.add_parser("add", parents=[common], help="top up an account")
    add.add_argument("system_id")
    add.add_argument("amount", help="credits, e.g. 100 or 0.50")
    add.add_argument("--note")
    transfer = credits.add_parser("transfer", parents=[common],
                                  help="move credits between two accounts")
    transfer.add_argument("source", metavar="FROM")
    transfer.add_argument("target", metavar="TO")
    transfer.add_argument("amount")
    auto = credits.add_parser("auto-topup", parents=[common],
                              help="top up automatically below a threshold")
    auto.add_argument("system_id")
    auto.add_argument("--threshold", help="top up when the balance is at or below this")
    auto.add_argument("--amount", help="credits added each time")
    auto.add_argument("--monthly-cap", help="at most this many credits a month (optional)")
    auto.add_argument("--off", action="store_true", help="turn automatic top-up off")
    alert = credits.add_parser("alert", parents=[common], help="low-balance alert")
    alert.add_argument("system_id")
    alert.add_argument("--threshold", help="alert when the balance falls below this")
    alert.add_argument("--off", action="store_true", help="turn the alert off")

    balance = groups.add_parser("balance", parents=[common], help="show a balance")
    balance.add_argument("system_id")

    ledger = groups.add_parser("ledger", help="credit movements").add_subparsers(
        dest="action", required=True
    )
    l_list = ledger.add_parser("list", parents=[common], help="an account's newest movements")
    l_list.add_argument("system_id")
    l_list.add_argument("--limit", type=int, default=50)
    ledger.add_parser("check", parents=[common],
                      help="check that balances equal their ledgers")

    history = groups.add_parser("history", help="message history").add_subparsers(
        dest="action", required=True
    )
    query = history.add_parser("query", parents=[common], help="search the history")
    _history_flags(query)
    query.add_argument("--limit", type=int, default=100)
    query.add_argument("--after-id", type=int, help="continue after this message id")
    export = history.add_parser("export", parents=[socket_only],
                                help="export the history as CSV (streamed)")
    _history_flags(export)
    export.add_argument("--output", "-o", required=True, help="CSV file to write ('-' = stdout)")
    delete = history.add_parser("delete", parents=[common], help="delete history entries")
    delete.add_argument("system_id")
    delete.add_argument("message_ids", nargs="+", type=int)

    stop = groups.add_parser("stop", help="STOP list (destinations not to message)")
    stop_sub = stop.add_subparsers(dest="action", required=True)
    st_add = stop_sub.add_parser("add", parents=[common], help="STOP-list a destination")
    st_add.add_argument("system_id")
    st_add.add_argument("destination")
    st_add.add_argument("--note")
    st_list = stop_sub.add_parser("list", parents=[common], help="list STOP-listed destinations")
    st_list.add_argument("system_id")
    st_remove = stop_sub.add_parser("remove", parents=[common], help="remove a destination")
    st_remove.add_argument("system_id")
    st_remove.add_argument("destination")

    sessions = groups.add_parser(
        "sessions", help="list bound sessions (of every node), kick one or an account's",
        usage="smppgw admin sessions [list [SID] | kick ID | kick --account SID] [--json]",
        description="`sessions` or `sessions list [SID]`: every bound session (of one "
                    "account), with the ID to kick it by. `sessions kick ID`: unbind that "
                    "session, on whichever node. `sessions kick --account SID`: unbind all "
                    "of the account's sessions. A kicked client may bind again at once.",
    )
    sessions.add_argument("words", nargs="*", metavar="list [SID] | kick ID",
                          help=argparse.SUPPRESS)
    sessions.add_argument("--account", metavar="SID",
                          help="with kick: every session of this account")

    customer = groups.add_parser(
        "customer", help="customers of the web panel (people who own accounts), operators"
    ).add_subparsers(dest="action", required=True)
    c_create = customer.add_parser("create", parents=[common],
                                   help="create a customer; prints a one-time password")
    c_create.add_argument("email")
    c_create.add_argument("--operator", action="store_true",
                          help="an operator: sees and manages every account")
    c_create.add_argument("--account", action="append", metavar="SID",
                          help="an account the customer owns (repeatable)")
    c_create.add_argument("--contact-email")
    c_add = customer.add_parser("add-account", parents=[common],
                                help="give a customer one more account")
    c_add.add_argument("email")
    c_add.add_argument("system_id")
    c_password = customer.add_parser("password", parents=[common],
                                     help="reset a customer's password (shown once)")
    c_password.add_argument("reset", choices=["reset"])
    c_password.add_argument("email")
    customer.add_parser("list", parents=[common], help="list customers")

    groups.add_parser("nodes", parents=[common],
                      help="list the nodes sharing the store, their heartbeat and sessions")

    audit = groups.add_parser("audit", parents=[common], help="list the audit log")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--target", help="only entries about this account")
    audit.add_argument("--action", dest="action_filter", help="only this action (or prefix)")

    _upstream_parsers(groups, common)
    _route_parsers(groups, common)
    _number_parsers(groups, common)
    return admin


def _global_flags(default: Any, *, json: bool = True) -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    if json:
        flags.add_argument("--json", action="store_true", default=default,
                           help="print JSON for scripts")
    flags.add_argument("--socket", default=default,
                       help="admin socket (default $SMPPGW_STATE_DIR/admin.sock)")
    return flags


class _Groups:
    """The command groups of `admin`, each given the global flags (`account --json
    list` works too) unless it already has them."""

    def __init__(self, subparsers: argparse._SubParsersAction,
                 common: argparse.ArgumentParser) -> None:
        self._subparsers = subparsers
        self._common = common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parents = list(kwargs.pop("parents", []))
        if self._common not in parents:
            parents.append(self._common)
        return self._subparsers.add_parser(name, parents=parents, **kwargs)


def _upstream_parsers(groups: _Groups, common: argparse.ArgumentParser) -> None:
    upstream = groups.add_parser(
        "upstream", help="upstream SMSCs (connectors): list, add, change, start, stop"
    ).add_subparsers(dest="action", required=True)
    upstream.add_parser("list", parents=[common], help="every connector and its link state")
    add = upstream.add_parser("add", parents=[common], help="add a connector")
    add.add_argument("name")
    _upstream_flags(add)
    set_ = upstream.add_parser("set", parents=[common],
                               help="change a connector (only the flags given)")
    set_.add_argument("name")
    _upstream_flags(set_)
    for action, what in (("remove", "remove a connector"), ("start", "start (enable) it"),
                         ("stop", "stop (disable) it, on every node")):
        p = upstream.add_parser(action, parents=[common], help=what)
        p.add_argument("name")


def _upstream_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", choices=CONNECTOR_TYPES)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--system-id", help="system_id the gateway binds with")
    password = parser.add_mutually_exclusive_group()
    password.add_argument("--password-stdin", action="store_true",
                          help="read the bind password from the first line of stdin")
    password.add_argument("--password", help="the bind password (visible in `ps`: "
                                             "prefer --password-stdin)")
    parser.add_argument("--bind", choices=BIND_MODES)
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                        help="TLS to the upstream")
    parser.add_argument("--window", type=int, help="outstanding submits")
    parser.add_argument("--throughput", type=float, help="messages per second")
    parser.add_argument("--long-messages", choices=LONG_MESSAGE_MODES)
    parser.add_argument("--system-type")
    parser.add_argument("--reconnect-min", type=float, help="seconds")
    parser.add_argument("--reconnect-max", type=float, help="seconds")
    parser.add_argument("--latency-ms", type=float, help="simulator: delay of its answers")
    parser.add_argument("--mix", help="simulator: outcome mix, e.g. delivered=9,undeliverable=1")
    parser.add_argument("--nodes", type=_node_ids, metavar="ID,ID",
                        help="several nodes: only these node_ids keep a link to it "
                             "('' = every node)")


def _node_ids(text: str) -> list[int]:
    """'1,2' -> [1, 2]; '' -> [] (every node)."""
    try:
        return [int(n) for n in text.replace(" ", "").split(",") if n]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected node_ids separated by commas, e.g. 1,2; got {text!r}") from None


def _route_parsers(groups: _Groups, common: argparse.ArgumentParser) -> None:
    route = groups.add_parser(
        "route", help="which connectors carry which destinations"
    ).add_subparsers(dest="action", required=True)
    route.add_parser("list", parents=[common], help="the routing table")
    set_ = route.add_parser("set", parents=[common],
                            help="route a prefix to connectors, in failover order")
    set_.add_argument("prefix", help=f"destination prefix; '{DEFAULT_ROUTE}' or '' for every "
                                     "destination")
    set_.add_argument("connectors", nargs="+", metavar="CONNECTOR")
    set_.add_argument("--account", metavar="SID", help="a route of this account only")
    remove = route.add_parser("remove", parents=[common], help="remove a route")
    remove.add_argument("prefix", help=f"'{DEFAULT_ROUTE}' or '' for every destination")
    remove.add_argument("--account", metavar="SID")


def _number_parsers(groups: _Groups, common: argparse.ArgumentParser) -> None:
    number = groups.add_parser(
        "number", help="inbound numbers: whose MOs an account receives"
    ).add_subparsers(dest="action", required=True)
    what = "an MSISDN, a prefix 33612* or a range 33612340000-33612349999"
    for action in ("add", "remove"):
        p = number.add_parser(action, parents=[common], help=f"{action} {what}")
        p.add_argument("system_id")
        p.add_argument("number", help=what)
    listing = number.add_parser("list", parents=[common], help="inbound numbers")
    listing.add_argument("system_id", nargs="?", help="one account (default: all)")


def _setting_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", type=int, help="outstanding submits per session")
    parser.add_argument("--throughput", type=float, help="messages per second per session")
    parser.add_argument("--bind-limit", type=int,
                        help="TX+RX pairs (or TRX sessions) at once")
    parser.add_argument("--gsm-packed", choices=("yes", "no"), help="GSM 03.38 packed")
    parser.add_argument("--max-segments", type=int, help="segments per message at most")
    parser.add_argument("--keep-bodies", choices=("yes", "no"), help="keep message texts")
    parser.add_argument("--vendor-tlvs", choices=("yes", "no"),
                        help="add TLVs 0x1401/0x1402 to DLRs and MOs (smpplib refuses them)")
    parser.add_argument("--dlr-retention-days", type=int,
                        help="days a DLR/MO waits for a bind")
    parser.add_argument("--stop-mode", choices=("dlr", "refuse"),
                        help="STOP-listed destination: failed DLR (53) or refuse the submit")
    parser.add_argument("--addressing", choices=("lenient", "strict"),
                        help="lenient: any source TON/NPI for an enabled sender; strict: the "
                             "sender kind's exact TON/NPI")
    parser.add_argument("--outbind", dest="outbind_address", metavar="HOST:PORT",
                        help="send outbind there while receipts wait and no receiver is "
                             "bound ('' turns it off)")
    parser.add_argument("--outbind-system-id", help="system_id the gateway presents in outbind")
    parser.add_argument("--outbind-password", help="password the gateway presents in outbind")


def _history_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("system_id", nargs="?", help="one account (default: all)")
    parser.add_argument("--since", help="from this time (ISO 8601, UTC if no zone)")
    parser.add_argument("--until", help="before this time")
    parser.add_argument("--sender")
    parser.add_argument("--receiver")
    parser.add_argument("--status", help="e.g. DELIVERED, UNDELIVERABLE")
    parser.add_argument("--message-id", type=int)
    parser.add_argument("--direction", choices=("MT", "MO"))
