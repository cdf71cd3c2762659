"""Settings defaults, derived paths and every validation rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from config import ConfigError, Settings
from config.settings import RULES, setting_types


def test_defaults() -> None:
    s = Settings()
    assert s.state_dir == Path("var")
    assert s.database_url is None
    assert s.sqlite_synchronous == "FULL"
    assert (s.smpp_host, s.smpp_port) == ("127.0.0.1", 2775)
    assert (s.tls_port, s.tls_cert, s.tls_key, s.tls_min_version) == (None, None, None, "1.3")
    assert (s.metrics_host, s.metrics_port) == ("127.0.0.1", 9775)
    assert s.admin_socket is None
    assert s.uniform_bind_failure is False
    assert (s.bind_timeout, s.enquire_link_interval) == (30.0, 30.0)
    assert (s.session_max_age, s.response_timeout) == (86400.0, 10.0)
    assert (s.default_window, s.default_throughput, s.max_pdu_size) == (10, 20.0, 65536)
    assert s.batch_max_size == 1000
    assert (s.simulator_delay_ms, s.dlr_retry_interval, s.dlr_max_age) == (200.0, 30.0, 604800.0)
    assert s.create_demo_account is True
    assert (s.node_id, s.log_level) == (0, "INFO")
    assert s.metrics_enabled and not s.tls_enabled


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().smpp_port = 1  # type: ignore[misc]


def test_settings_take_keywords_only() -> None:
    with pytest.raises(TypeError):
        Settings(Path("x"))  # type: ignore[misc]


def test_replace_revalidates() -> None:
    with pytest.raises(ConfigError, match="smpp_port"):
        dataclasses.replace(Settings(), smpp_port=-5)


@pytest.mark.parametrize(
    ("state_dir", "database_url", "expected"),
    [
        ("var", None, "sqlite+aiosqlite:///var/smppgw.db"),
        ("/var/lib/smppgw", None, "sqlite+aiosqlite:////var/lib/smppgw/smppgw.db"),
        ("var", "postgresql+asyncpg://gw@db/smppgw", "postgresql+asyncpg://gw@db/smppgw"),
        ("var", "sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
    ],
)
def test_effective_database_url(state_dir: str, database_url: str | None, expected: str) -> None:
    s = Settings(state_dir=Path(state_dir), database_url=database_url)
    assert s.effective_database_url == expected


def test_effective_admin_socket() -> None:
    assert Settings(state_dir=Path("/run/gw")).effective_admin_socket == Path("/run/gw/admin.sock")
    explicit = Settings(admin_socket=Path("/tmp/a.sock"))
    assert explicit.effective_admin_socket == Path("/tmp/a.sock")


@pytest.mark.parametrize(
    ("kwargs", "attribute", "expected"),
    [
        ({"state_dir": "/srv/gw"}, "state_dir", Path("/srv/gw")),
        ({"tls_cert": "c.pem", "tls_key": "k.pem", "tls_port": 3550}, "tls_cert", Path("c.pem")),
        ({"bind_timeout": 5}, "bind_timeout", 5.0),
        ({"log_level": "debug"}, "log_level", "DEBUG"),
        ({"sqlite_synchronous": "normal"}, "sqlite_synchronous", "NORMAL"),
        ({"tls_port": ""}, "tls_port", None),
        ({"database_url": ""}, "database_url", None),
        ({"admin_socket": ""}, "admin_socket", None),
    ],
)
def test_lossless_coercions(kwargs: dict[str, Any], attribute: str, expected: Any) -> None:
    value = getattr(Settings(**kwargs), attribute)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"smpp_port": -1}, "smpp_port: must be an integer between 0 and 65535"),
        ({"smpp_port": 65536}, "smpp_port: must be an integer between 0 and 65535"),
        ({"smpp_port": "2775"}, "smpp_port: must be an integer .*, got '2775'"),
        ({"smpp_port": True}, "smpp_port: must be an integer"),
        ({"smpp_port": 2775.0}, "smpp_port: must be an integer"),
        ({"metrics_port": -2}, "metrics_port: must be an integer between -1 and 65535"),
        ({"node_id": 1024}, "node_id: must be an integer between 0 and 1023, got 1024"),
        ({"node_id": -1}, "node_id: must be an integer between 0 and 1023"),
        ({"default_window": 0}, "default_window: must be an integer of at least 1, got 0"),
        ({"batch_max_size": 0}, "batch_max_size: must be an integer of at least 1"),
        ({"max_pdu_size": 1023}, "max_pdu_size: must be an integer between 1024 and 16777216"),
        ({"max_pdu_size": 2**24 + 1}, "max_pdu_size: must be an integer between 1024"),
        ({"bind_timeout": 0}, "bind_timeout: must be a positive number of seconds, got 0"),
        ({"enquire_link_interval": -1.0}, "enquire_link_interval: must be a positive number"),
        ({"session_max_age": float("inf")}, "session_max_age: must be a positive number"),
        ({"response_timeout": float("nan")}, "response_timeout: must be a positive number"),
        ({"dlr_retry_interval": 0.0}, "dlr_retry_interval: must be a positive number"),
        ({"dlr_max_age": -5}, "dlr_max_age: must be a positive number"),
        ({"default_throughput": 0}, "default_throughput: must be a positive number of messages"),
        ({"simulator_delay_ms": "fast"}, "simulator_delay_ms: must be a number of milliseconds"),
        ({"uniform_bind_failure": 1}, "uniform_bind_failure: must be true or false"),
        ({"create_demo_account": "yes"}, "create_demo_account: must be true or false"),
        ({"sqlite_synchronous": "SOMETIMES"}, "sqlite_synchronous: must be one of 'OFF', 'NORMAL'"),
        ({"log_level": "LOUD"}, "log_level: must be one of 'DEBUG', .*, got 'LOUD'"),
        ({"tls_min_version": "1.1"}, r"tls_min_version: must be the string '1\.2' or '1\.3'"),
        ({"tls_min_version": 1.3}, r"tls_min_version: .*\(quoted in TOML\), got 1\.3"),
        ({"smpp_host": ""}, "smpp_host: must be a host name or IP address"),
        ({"metrics_host": "local host"}, "metrics_host: must be a host name or IP address"),
        ({"state_dir": ""}, "state_dir: must be a file system path, got ''"),
        ({"state_dir": 5}, "state_dir: must be a file system path, got 5"),
        ({"tls_port": 70000}, "tls_port: must be an integer between 0 and 65535 .*or empty"),
        ({"database_url": "mysql://x/y"}, "database_url: must be an SQLAlchemy URL"),
        ({"database_url": "smppgw.db"}, "database_url: must be an SQLAlchemy URL"),
    ],
)
def test_field_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Settings(**kwargs)
    assert info.value.setting == next(iter(kwargs))


@pytest.mark.parametrize(
    ("kwargs", "setting", "message"),
    [
        ({"tls_port": 3550}, "tls_port", "set to 3550, but tls_cert and tls_key are not set"),
        ({"tls_port": 3550, "tls_cert": Path("c")}, "tls_port", "but tls_key is not set"),
        ({"tls_port": 3550, "tls_key": Path("k")}, "tls_port", "but tls_cert is not set"),
        ({"tls_cert": Path("c"), "tls_key": Path("k")}, "tls_cert", "tls_port is not set"),
        ({"tls_key": Path("k")}, "tls_key", "set to 'k', but tls_port is not set"),
        (
            {"tls_port": 2775, "tls_cert": Path("c"), "tls_key": Path("k")},
            "tls_port",
            r"must differ from smpp_port \(2775\), got 2775",
        ),
        ({"metrics_port": 2775}, "metrics_port", "must differ from smpp_port on the same host"),
        (
            {"metrics_port": 2775, "metrics_host": "0.0.0.0", "smpp_host": "10.0.0.1"},
            "metrics_port",
            "must differ from smpp_port",
        ),
        ({"state_dir": Path("/" + "d" * 100)}, "state_dir", "107-byte Unix socket limit"),
        ({"admin_socket": Path("/" + "s" * 107)}, "admin_socket", "107-byte Unix socket limit"),
    ],
)
def test_consistency_checks(kwargs: dict[str, Any], setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Settings(**kwargs)
    assert info.value.setting == setting


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tls_port": 3550, "tls_cert": Path("c.pem"), "tls_key": Path("k.pem")},
        {"smpp_port": 0, "tls_port": 0, "tls_cert": Path("c"), "tls_key": Path("k")},
        {"smpp_port": 0, "metrics_port": 0},
        {"metrics_port": -1},
        {"metrics_port": 2775, "metrics_host": "10.0.0.1", "smpp_host": "10.0.0.2"},
        {"state_dir": Path("/" + "d" * 50), "admin_socket": Path("/run/a.sock")},
        {"batch_max_size": 1, "simulator_delay_ms": 0},
        {"node_id": 1023, "max_pdu_size": 1024},
    ],
)
def test_valid_edge_configurations(kwargs: dict[str, Any]) -> None:
    settings = Settings(**kwargs)
    assert all(getattr(settings, name) == value for name, value in kwargs.items())


def test_metrics_disabled_by_minus_one() -> None:
    assert not Settings(metrics_port=-1).metrics_enabled


def test_every_setting_has_a_rule_and_a_known_type() -> None:
    types = setting_types()
    assert set(types) == set(RULES)
    # tuple: the [[upstreams]] and [[routes]] tables, which only a TOML file can give.
    assert {base for base, _ in types.values()} <= {Path, str, int, float, bool, tuple}
