"""ConfigError messages name the setting, the value and its source."""

from __future__ import annotations

from pathlib import Path

from config.errors import ConfigError


def test_full_message() -> None:
    err = ConfigError(
        "must be an integer between 0 and 65535",
        setting="smpp_port",
        value="abc",
        source="SMPPGW_SMPP_PORT",
    )
    assert str(err) == (
        "smpp_port: must be an integer between 0 and 65535, got 'abc' (from SMPPGW_SMPP_PORT)"
    )
    assert isinstance(err, ValueError)


def test_message_without_setting_or_value() -> None:
    assert str(ConfigError("config file x.toml does not exist")) == (
        "config file x.toml does not exist"
    )


def test_none_is_a_value_worth_showing() -> None:
    assert str(ConfigError("must be set", setting="x", value=None)) == "x: must be set, got None"


def test_paths_show_as_text() -> None:
    assert str(ConfigError("bad", setting="state_dir", value=Path("/x"))).endswith("got '/x'")


def test_with_source_adds_source_once() -> None:
    err = ConfigError("bad", setting="node_id", value=5)
    sourced = err.with_source("a.toml")
    assert str(sourced) == "node_id: bad, got 5 (from a.toml)"
    assert sourced.with_source("other") is sourced
    assert err.with_source(None) is err
    assert str(ConfigError("bad", setting="x").with_source("env")) == "x: bad (from env)"
