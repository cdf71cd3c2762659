"""ConfigError messages name the setting, the value and its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.loader import load_settings


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


# --- no password in any configuration error ---------------------------------------------

SECRET = "s3cret"


@pytest.mark.parametrize(
    ("var", "value", "shown"),
    [
        ("SMPPGW_DATABASE_URL", f"mysql://gw:{SECRET}@db/smppgw", "mysql://gw:***@db/smppgw"),
        ("SMPPGW_UPSTREAM_URL", f"http://acme:{SECRET}@10.0.0.7", "http://acme:***@10.0.0.7"),
        ("SMPPGW_UPSTREAM_URL", f"smpp://acme:{SECRET}@", "smpp://acme:***@"),
        ("SMPPGW_UPSTREAM_URL", f"smpp://acme:{SECRET}@h:2775?bogus=1",
         "smpp://acme:***@h:2775?bogus=1"),
    ],
)
def test_url_errors_show_the_url_without_its_password(var: str, value: str, shown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={var: value})
    message = str(caught.value)
    assert SECRET not in message and SECRET not in repr(caught.value)
    assert shown in message and var in message


def test_a_wrong_password_value_is_described_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "smppgw.toml"
    config.write_text('smtp_host = "mail.test"\nsmtp_user = "gw"\nsmtp_password = 12345\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    assert "12345" not in str(caught.value)
    assert "smtp_password" in str(caught.value) and "int" in str(caught.value)


def test_a_toml_syntax_error_on_a_password_line_does_not_quote_the_password(
    tmp_path: Path,
) -> None:
    config = tmp_path / "smppgw.toml"
    config.write_text(f'smtp_host = "mail.test"\nsmtp_password = "{SECRET}\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    message = str(caught.value)
    assert "line 2: smtp_password = ***" in message and SECRET not in message
