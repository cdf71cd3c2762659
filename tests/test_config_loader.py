"""load_settings: TOML file, environment, overrides, precedence and error reporting."""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from config import ConfigError, Settings, load_settings
from config.errors import ConfigErrors
from config.loader import load_settings_with_sources, parse_value


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smppgw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_nothing_given_means_defaults() -> None:
    assert load_settings(env={}) == Settings()


def test_default_env_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMPPGW_NODE_ID", "7")
    assert load_settings().node_id == 7


# --- precedence ---------------------------------------------------------------------------


def test_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "smpp_port = 1001\nmetrics_port = 1002\nnode_id = 3\n")
    env = {"SMPPGW_METRICS_PORT": "2002", "SMPPGW_NODE_ID": "4"}
    s = load_settings(path, env=env, overrides={"node_id": 5})
    assert s.bind_timeout == 30.0  # default
    assert s.smpp_port == 1001  # file
    assert s.metrics_port == 2002  # env beats file
    assert s.node_id == 5  # override beats env


def test_none_override_means_flag_not_given(tmp_path: Path) -> None:
    path = write(tmp_path, "node_id = 3\n")
    assert load_settings(path, env={}, overrides={"node_id": None}).node_id == 3


def test_empty_env_clears_an_optional_file_value(tmp_path: Path) -> None:
    path = write(tmp_path, 'database_url = "postgresql+asyncpg://gw@db/gw"\n')
    assert load_settings(path, env={"SMPPGW_DATABASE_URL": ""}).database_url is None


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "node_id = 9\n")
    assert load_settings(env={"SMPPGW_CONFIG": str(path)}).node_id == 9


def test_explicit_config_file_beats_smppgw_config(tmp_path: Path) -> None:
    path = write(tmp_path, "node_id = 9\n")
    other = tmp_path / "missing.toml"
    assert load_settings(path, env={"SMPPGW_CONFIG": str(other)}).node_id == 9


def test_errors_come_from_the_winning_source(tmp_path: Path) -> None:
    path = write(tmp_path, "smpp_port = 70000\n")
    assert load_settings(path, env={"SMPPGW_SMPP_PORT": "2775"}).smpp_port == 2775


# --- TOML file ----------------------------------------------------------------------------


def test_full_toml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        state_dir = "/var/lib/smppgw"
        database_url = "postgresql+asyncpg://gw@db/smppgw"
        smpp_host = "0.0.0.0"
        smpp_port = 2775
        tls_port = 3550
        tls_cert = "/etc/smppgw/cert.pem"
        tls_key = "/etc/smppgw/key.pem"
        tls_min_version = "1.2"
        metrics_port = -1
        uniform_bind_failure = true
        bind_timeout = 5
        batch_max_size = 500
        log_level = "debug"
        """,
    )
    s = load_settings(path, env={})
    assert s.state_dir == Path("/var/lib/smppgw")
    assert s.tls_port == 3550 and s.tls_cert == Path("/etc/smppgw/cert.pem")
    assert s.tls_min_version == "1.2"
    assert s.uniform_bind_failure is True
    assert s.bind_timeout == 5.0 and isinstance(s.bind_timeout, float)
    assert s.batch_max_size == 500
    assert s.log_level == "DEBUG"
    assert not s.metrics_enabled


def test_empty_toml_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), env={}) == Settings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("smpp_port = 2775.0\n", "smpp_port: must be an integer .*, got 2775.0 \\(from .*toml\\)"),
        ('smpp_port = "2775"\n', "smpp_port: must be an integer .*, got '2775'"),
        ('uniform_bind_failure = "yes"\n', "uniform_bind_failure: must be true or false"),
        ("tls_min_version = 1.3\n", "tls_min_version: .*quoted in TOML.*, got 1.3"),
        ("state_dir = 5\n", "state_dir: must be a file system path, got 5"),
        ("node_id = [1]\n", "node_id: must be an integer"),
    ],
)
def test_toml_values_must_have_the_setting_type(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("smpp_prot = 1\n", "unknown setting 'smpp_prot'; did you mean 'smpp_port'"),
        ("bind_timout = 1\n", "did you mean 'bind_timeout'"),
        ("colour = 1\n", r"unknown setting 'colour' \(from "),
        ("[gateway]\nsmpp_port = 1\n", "'gateway'; settings are top-level keys"),
    ],
)
def test_unknown_toml_keys(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(write(tmp_path, text), env={})
    assert str(tmp_path) in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"config file {path} does not exist"):
        load_settings(path, env={})


def test_config_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"cannot read config file {tmp_path}"):
        load_settings(tmp_path, env={})


def test_unparsable_toml_names_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "smpp_port = 2775\nlog_level DEBUG\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert f"config file {path} is not valid TOML" in message
    assert "line 2" in message
    assert "line 2: log_level DEBUG" in message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'smpp_host = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_settings(path, env={})


# --- environment --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "text", "attribute", "expected"),
    [
        ("SMPPGW_SMPP_PORT", "2776", "smpp_port", 2776),
        ("SMPPGW_SMPP_PORT", " 0 ", "smpp_port", 0),
        ("SMPPGW_METRICS_PORT", "-1", "metrics_port", -1),
        ("SMPPGW_BIND_TIMEOUT", "2.5", "bind_timeout", 2.5),
        ("SMPPGW_BIND_TIMEOUT", "7", "bind_timeout", 7.0),
        ("SMPPGW_UNIFORM_BIND_FAILURE", "1", "uniform_bind_failure", True),
        ("SMPPGW_UNIFORM_BIND_FAILURE", "true", "uniform_bind_failure", True),
        ("SMPPGW_UNIFORM_BIND_FAILURE", "YES", "uniform_bind_failure", True),
        ("SMPPGW_CREATE_DEMO_ACCOUNT", "0", "create_demo_account", False),
        ("SMPPGW_CREATE_DEMO_ACCOUNT", "False", "create_demo_account", False),
        ("SMPPGW_CREATE_DEMO_ACCOUNT", "no", "create_demo_account", False),
        ("SMPPGW_STATE_DIR", "/srv/gw", "state_dir", Path("/srv/gw")),
        ("SMPPGW_ADMIN_SOCKET", "/run/gw.sock", "admin_socket", Path("/run/gw.sock")),
        ("SMPPGW_ADMIN_SOCKET", "", "admin_socket", None),
        ("SMPPGW_TLS_PORT", "", "tls_port", None),
        ("SMPPGW_DATABASE_URL", "  ", "database_url", None),
        ("SMPPGW_LOG_LEVEL", "warning", "log_level", "WARNING"),
        ("SMPPGW_SMPP_HOST", "::", "smpp_host", "::"),
        ("SMPPGW_TLS_MIN_VERSION", "1.2", "tls_min_version", "1.2"),
    ],
)
def test_env_conversions(var: str, text: str, attribute: str, expected: Any) -> None:
    value = getattr(load_settings(env={var: text}), attribute)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("var", "text", "message"),
    [
        (
            "SMPPGW_SMPP_PORT",
            "abc",
            (
                r"^smpp_port: must be an integer between 0 and 65535 \(0 picks a free port\), "
                r"got 'abc' \(from SMPPGW_SMPP_PORT\)$"
            ),
        ),
        ("SMPPGW_SMPP_PORT", "", "smpp_port: must be an integer.*got ''"),
        ("SMPPGW_SMPP_PORT", "2775.0", "got '2775.0'"),
        ("SMPPGW_SMPP_PORT", "99999", r"got 99999 \(from SMPPGW_SMPP_PORT\)"),
        ("SMPPGW_TLS_PORT", "x", "tls_port: must be an integer .*or empty for none"),
        ("SMPPGW_BIND_TIMEOUT", "soon", "bind_timeout: must be a positive number of seconds"),
        ("SMPPGW_BIND_TIMEOUT", "-1", r"got -1.0 \(from SMPPGW_BIND_TIMEOUT\)"),
        ("SMPPGW_BIND_TIMEOUT", "nan", "bind_timeout: must be a positive number"),
        ("SMPPGW_UNIFORM_BIND_FAILURE", "maybe", "uniform_bind_failure: must be true or false"),
        ("SMPPGW_UNIFORM_BIND_FAILURE", "", "uniform_bind_failure: must be true or false"),
        ("SMPPGW_STATE_DIR", "", r"state_dir: must be a file system path, got ''"),
        ("SMPPGW_LOG_LEVEL", "", "log_level: must be one of"),
        ("SMPPGW_NODE_ID", "1024", r"node_id: .*got 1024 \(from SMPPGW_NODE_ID\)"),
        ("SMPPGW_TLS_PORT", "3550", r"tls_port: set to 3550, .*\(from SMPPGW_TLS_PORT\)"),
    ],
)
def test_env_errors(var: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env={var: text})


@pytest.mark.parametrize(
    ("var", "message"),
    [
        (
            "SMPPGW_SMPP_PROT",
            "unknown environment variable SMPPGW_SMPP_PROT; did you mean SMPPGW_SMPP_PORT",
        ),
        ("SMPPGW_smpp_port", "unknown environment variable SMPPGW_smpp_port"),
        ("SMPPGW_TEST_PG_URL", "unknown environment variable SMPPGW_TEST_PG_URL"),
    ],
)
def test_unknown_smppgw_env_vars_are_logged_and_ignored(
    var: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="config.loader"):
        assert load_settings(env={var: "1"}) == Settings()
    assert message in caplog.text


def test_unrelated_env_vars_are_ignored() -> None:
    assert load_settings(env={"PATH": "/bin", "SMPP_PORT": "x", "smppgw_x": "1"}) == Settings()


# --- overrides ----------------------------------------------------------------------------


def test_overrides_take_typed_values() -> None:
    s = load_settings(env={}, overrides={"state_dir": Path("/x"), "smpp_port": 0})
    assert (s.state_dir, s.smpp_port) == (Path("/x"), 0)


def test_string_overrides_are_converted() -> None:
    s = load_settings(env={}, overrides={"smpp_port": "2776", "uniform_bind_failure": "yes"})
    assert (s.smpp_port, s.uniform_bind_failure) == (2776, True)


def test_bad_override_names_the_command_line() -> None:
    with pytest.raises(ConfigError, match=r"node_id: .*got 5000 \(from command line\)"):
        load_settings(env={}, overrides={"node_id": 5000})


def test_a_removed_setting_says_why_wherever_it_is_named(tmp_path: Path) -> None:
    removed = "setting 'batch_max_delay_ms' was removed: the store writer commits"
    with pytest.raises(ConfigError, match=removed):
        load_settings(write(tmp_path, "batch_max_delay_ms = 2.0\n"), env={})
    with pytest.raises(ConfigError, match=removed) as info:
        load_settings(env={"SMPPGW_BATCH_MAX_DELAY_MS": "2"})
    assert "SMPPGW_BATCH_MAX_DELAY_MS" in str(info.value)
    with pytest.raises(ConfigError, match=removed):
        load_settings(overrides={"batch_max_delay_ms": 2.0}, env={})


def test_unknown_override() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'smpp_prot'; did you mean 'smpp_port'"):
        load_settings(env={}, overrides={"smpp_prot": 1})


def test_unknown_override_with_none_value_is_still_ignored() -> None:
    # None means "flag not given", whatever the flag.
    assert load_settings(env={}, overrides={"anything": None}) == Settings()


def test_cross_field_error_reports_source_of_the_named_setting(tmp_path: Path) -> None:
    path = write(tmp_path, 'tls_cert = "c.pem"\ntls_key = "k.pem"\n')
    with pytest.raises(ConfigError, match=f"tls_cert: .*tls_port is not set.*from {path}"):
        load_settings(path, env={})
    assert load_settings(path, env={"SMPPGW_TLS_PORT": "3550"}).tls_port == 3550


# --- parse_value --------------------------------------------------------------------------


def test_parse_value_by_type() -> None:
    assert parse_value("smpp_port", "10") == 10
    assert parse_value("bind_timeout", "1e1") == 10.0
    assert parse_value("create_demo_account", "TRUE") is True
    assert parse_value("tls_cert", "a.pem") == Path("a.pem")
    assert parse_value("tls_cert", "") is None
    assert parse_value("smpp_host", " ::1 ") == "::1"


# --- every mistake at once, and where each value came from ---------------------------------



def test_three_bad_values_in_a_file_are_three_errors(tmp_path: Path) -> None:
    path = write(tmp_path, 'smpp_port = "x"\ncolour = 1\nnode_id = 5000\n'
                           'uniform_bind_failure = "yes"\n')
    with pytest.raises(ConfigErrors) as caught:
        load_settings(path, env={})
    messages = caught.value.messages
    assert len(messages) == 4
    assert messages[0] == f"unknown setting 'colour' (from {path})"
    assert any(m.startswith("smpp_port: must be an integer") for m in messages)
    assert any(m.startswith("node_id: must be an integer") for m in messages)
    assert any(m.startswith("uniform_bind_failure: must be true or false") for m in messages)
    assert all(m.endswith(f"(from {path})") for m in messages)
    assert str(caught.value).startswith("4 problems:\n  unknown setting 'colour'")


def test_errors_from_file_environment_and_command_line_come_together(tmp_path: Path) -> None:
    path = write(tmp_path, "node_id = 5000\n[[upstreams]]\nname = 'a'\nport = 'x'\n"
                           "system_id = 'acme'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={"SMPPGW_SMPP_PORT": "abc"}, overrides={"web_port": "w"})
    messages = caught.value.messages
    assert "smpp_port: must be an integer between 0 and 65535 (0 picks a free port), "\
           "got 'abc' (from SMPPGW_SMPP_PORT)" in messages
    assert any(m.startswith("web_port: ") and m.endswith("(from command line)")
               for m in messages)
    assert f"node_id: must be an integer between 0 and 1023, got 5000 (from {path})" \
        in messages
    assert f"upstreams[0] 'a'.port: must be an integer between 1 and 65535, got 'x' " \
           f"(from {path})" in messages
    assert len(messages) == 4


def test_a_bad_environment_value_is_not_replaced_by_the_file_value(tmp_path: Path) -> None:
    path = write(tmp_path, "smpp_port = 2800\n")
    with pytest.raises(ConfigError, match=r"^smpp_port: .*\(from SMPPGW_SMPP_PORT\)$"):
        load_settings(path, env={"SMPPGW_SMPP_PORT": "x"})


def test_sources_name_default_file_environment_and_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, "smpp_port = 2800\nnode_id = 1\n[[upstreams]]\nname = 's'\n"
                           "type = 'simulator'\n")
    settings, sources = load_settings_with_sources(
        path, env={"SMPPGW_NODE_ID": "2", "SMPPGW_LOG_LEVEL": "debug"},
        overrides={"metrics_port": -1, "web_port": None})
    assert (settings.smpp_port, settings.node_id, settings.metrics_port) == (2800, 2, -1)
    assert sources["smpp_port"] == str(path)
    assert sources["upstreams"] == str(path)
    assert sources["node_id"] == "SMPPGW_NODE_ID"
    assert sources["log_level"] == "SMPPGW_LOG_LEVEL"
    assert sources["metrics_port"] == "command line"
    assert sources["web_port"] == "default" and sources["bind_timeout"] == "default"
    assert set(sources) == {f.name for f in fields(Settings)}
    assert load_settings(path, env={"SMPPGW_NODE_ID": "2"}) == settings.__class__(
        **{**{f.name: getattr(settings, f.name) for f in fields(Settings)},
           "log_level": "INFO", "metrics_port": 9775})
