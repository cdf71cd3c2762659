"""The `smppgw admin` command line without a gateway (gateway/cli/admin_args, admin):
the one request each command line makes (op and argument names, as the admin
operations take them), the usage errors found before any request, and how answers
are printed (nested values as text, passwords masked)."""

from __future__ import annotations

import io

import pytest

from gateway.cli import build_parser, main
from gateway.cli.admin import MASK, _cell, masked
from gateway.cli.admin_args import admin_request


def request(*argv: str) -> tuple[str, dict]:
    return admin_request(build_parser().parse_args(["admin", *argv]))


@pytest.mark.parametrize(
    "argv, op, body",
    [
        (("upstream", "list"), "upstream.list", {}),
        (("upstream", "add", "sim2", "--type", "simulator", "--latency-ms", "5",
          "--mix", "delivered=9,undeliverable=1"),
         "upstream.add", {"name": "sim2", "type": "simulator", "latency_ms": 5.0,
                          "mix": "delivered=9,undeliverable=1"}),
        (("upstream", "add", "orange", "--type", "smpp", "--host", "smsc.example",
          "--port", "2775", "--system-id", "gw", "--password", "s3cret",
          "--bind", "transmitter+receiver", "--tls", "--window", "20", "--throughput", "50",
          "--long-messages", "sar", "--system-type", "VMA", "--reconnect-min", "0.5",
          "--reconnect-max", "30"),
         "upstream.add", {"name": "orange", "type": "smpp", "host": "smsc.example",
                          "port": 2775, "system_id": "gw", "password": "s3cret",
                          "bind": "transmitter+receiver", "tls": True, "window": 20,
                          "throughput": 50.0, "long_messages": "sar", "system_type": "VMA",
                          "reconnect_min": 0.5, "reconnect_max": 30.0}),
        (("upstream", "set", "orange", "--no-tls", "--window", "5"),
         "upstream.set", {"name": "orange", "tls": False, "window": 5}),
        (("upstream", "remove", "orange"), "upstream.remove", {"name": "orange"}),
        (("upstream", "start", "orange"), "upstream.start", {"name": "orange"}),
        (("upstream", "stop", "orange"), "upstream.stop", {"name": "orange"}),
        (("route", "list"), "route.list", {}),
        (("route", "set", "336", "orange", "sim"), "route.set",
         {"prefix": "336", "connectors": ["orange", "sim"]}),
        (("route", "set", "default", "sim", "--account", "smpp-a"), "route.set",
         {"prefix": "", "connectors": ["sim"], "account": "smpp-a"}),
        (("route", "set", "", "sim"), "route.set", {"prefix": "", "connectors": ["sim"]}),
        (("route", "remove", "default"), "route.remove", {"prefix": ""}),
        (("route", "remove", "33", "--account", "smpp-a"), "route.remove",
         {"prefix": "33", "account": "smpp-a"}),
        (("number", "add", "smpp-a", "33612*"), "number.add",
         {"system_id": "smpp-a", "number": "33612*"}),
        (("number", "remove", "smpp-a", "33612340000-33612349999"), "number.remove",
         {"system_id": "smpp-a", "number": "33612340000-33612349999"}),
        (("number", "list"), "number.list", {}),
        (("number", "list", "smpp-a"), "number.list", {"system_id": "smpp-a"}),
        (("account", "delete", "smpp-a", "--yes"), "account.delete", {"system_id": "smpp-a"}),
        (("account", "delete", "smpp-a", "--yes", "--forfeit-balance"), "account.delete",
         {"system_id": "smpp-a", "forfeit_balance": True}),
        (("sessions",), "sessions.list", {}),
        (("sessions", "smpp-a"), "sessions.list", {"system_id": "smpp-a"}),
        (("sessions", "list", "smpp-a"), "sessions.list", {"system_id": "smpp-a"}),
        (("sessions", "kick", "gw1/12"), "sessions.kick", {"session_id": "gw1/12"}),
        (("sessions", "kick", "--account", "smpp-a"), "sessions.kick",
         {"system_id": "smpp-a"}),
    ],
)
def test_each_command_line_makes_its_request(argv, op, body) -> None:
    assert request(*argv) == (op, body)


def test_upstream_password_from_stdin_is_its_first_line(monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pa ss\nignored\n"))
    assert request("upstream", "set", "orange", "--password-stdin") == (
        "upstream.set", {"name": "orange", "password": "pa ss"})


@pytest.mark.parametrize(
    "argv, words",
    [
        (("sessions", "kick"), "one session ID"),
        (("sessions", "kick", "gw1/1", "--account", "smpp-a"), "not both"),
        (("sessions", "list", "--account", "smpp-a"), "--account goes with"),
        (("sessions", "a", "b"), "at most one account"),
    ],
)
def test_meaningless_command_lines_exit_2_before_any_request(capsys, argv, words) -> None:
    # The socket does not exist: exit 2, not 3, proves no connection was tried.
    assert main(["admin", "--socket", "/nonexistent.sock", *argv]) == 2
    assert words in capsys.readouterr().err


def test_argparse_refuses_unknown_choices_with_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["admin", "upstream", "add", "x", "--long-messages", "concat"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_nested_values_print_as_pairs_or_json_never_as_python_reprs() -> None:
    assert _cell({"status": "suspended", "window": 7}) == "status=suspended window=7"
    assert _cell({"note": "two words", "ips": ["10.0.0.0/8"], "gone": None}) == (
        'note="two words" ips=["10.0.0.0/8"] gone=-')
    assert _cell([{"a": 1}]) == '[{"a": 1}]'
    assert _cell(["x", "y"]) == "x,y"
    assert _cell([]) == "-" and _cell(None) == "-"


def test_passwords_in_answers_are_masked() -> None:
    answer = [{"name": "orange", "password": "s3cret", "config": {"password": "x",
                                                                  "outbind_password": "y"}}]
    assert masked(answer) == [{"name": "orange", "password": MASK,
                               "config": {"password": MASK, "outbind_password": MASK}}]
    assert masked({"password": None}) == {"password": None}
