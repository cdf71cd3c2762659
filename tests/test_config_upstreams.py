"""Upstream and route settings (config/upstreams): the defaults, the upstream_url
shortcut, TOML tables, and the mistakes refused when settings load."""

from __future__ import annotations

import pytest

from config.errors import ConfigError, ConfigErrors
from config.settings import Settings
from config.upstreams import (
    UpstreamConfig,
    parse_route,
    parse_upstream,
    resolve,
    upstream_from_url,
)


def test_no_configuration_means_one_simulator_for_everything():
    delivery = resolve((), ())
    assert [(u.name, u.type) for u in delivery.upstreams] == [("simulator", "simulator")]
    assert delivery.routes[0].prefix == "" and delivery.routes[0].connectors == ("simulator",)


def test_upstream_url_is_the_one_connector_shortcut():
    cfg = upstream_from_url("smpps://acme:p%40ss@smsc.example:3550?window=20&throughput=50")
    assert (cfg.host, cfg.port, cfg.system_id, cfg.password, cfg.tls) == (
        "smsc.example", 3550, "acme", "p@ss", True)
    assert (cfg.window, cfg.throughput) == (20, 50.0)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"routes": [{"prefix": "33", "connectors": ["nowhere"]}]}, "unknown connectors"),
        ({"upstreams": [{"name": "a", "host": "h"}]}, "system_id: is required for an smpp"),
        ({"upstreams": [{"name": "a", "system_id": "x", "bind": "both"}]}, "bind"),
        ({"upstreams": [{"name": "s", "type": "simulator", "mix": "lost=1"}]}, "outcome mix"),
        ({"upstreams": [{"name": "a", "system_id": "x", "colour": "red"}]}, "unknown upstream"),
        ({"routes": [{"prefix": "+33", "connectors": ["simulator"]}]}, "digits"),
    ],
)
def test_configuration_mistakes_are_refused_at_load(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        Settings(**kwargs)


def test_toml_tables_load(tmp_path):
    from config.loader import load_settings

    path = tmp_path / "gw.toml"
    path.write_text(
        'vendor_tlvs = true\n'
        '[[upstreams]]\nname = "a"\nsystem_id = "acme"\nport = 2775\nwindow = 20\n'
        '[[upstreams]]\nname = "sim"\ntype = "simulator"\nmix = "delivered=0.9,expired=0.1"\n'
        '[[routes]]\nprefix = "33"\nconnectors = ["a", "sim"]\n',
        encoding="utf-8",
    )
    settings = load_settings(path, env={})
    assert settings.vendor_tlvs is True
    delivery = resolve(settings.upstreams, settings.routes)
    assert [u.name for u in delivery.upstreams] == ["a", "sim"]
    assert delivery.routes[0].connectors == ("a", "sim")


@pytest.mark.parametrize("url", ["smpp://u:p@127.0.0.1:1?window=0", "http://x", "smpp://u@h?x=1"])
def test_bad_upstream_url_is_refused_at_load(url):
    with pytest.raises(ConfigError):
        Settings(upstream_url=url)


# --- parse_upstream / parse_route: every key checked, every problem at once ---------------



def test_parse_upstream_takes_json_forms_and_gives_the_field_types():
    cfg = parse_upstream({"name": "sim", "type": "simulator", "throughput": 50, "latency_ms": 0,
                          "mo_to": ["33612345678", 33700000000], "window": 1000})
    assert cfg.throughput == 50.0 and isinstance(cfg.throughput, float)
    assert isinstance(cfg.latency_ms, float)
    assert cfg.mo_to == ("33612345678", "33700000000")
    assert cfg.window == 1000


def test_parse_upstream_lists_every_problem_named_by_entry_and_key():
    raw = {"name": "smsc-a", "host": 10, "port": "x", "tls": "yes", "window": 0,
           "throughput": -1, "bind": "both", "reconnect_min": 5, "reconnect_max": 2}
    with pytest.raises(ConfigErrors) as caught:
        parse_upstream(raw, where="upstreams[2]")
    messages = caught.value.messages
    assert "upstreams[2] 'smsc-a'.port: must be an integer between 1 and 65535, got 'x'" \
        in messages
    keys = [m.split(":")[0] for m in messages]
    assert keys == [f"upstreams[2] 'smsc-a'.{k}" for k in
                    ("host", "port", "bind", "tls", "window", "throughput", "system_id",
                     "reconnect_max")]
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value).startswith("8 problems:\n  upstreams[2] 'smsc-a'.host")


def test_parse_upstream_does_not_repeat_a_name_the_caller_already_gave():
    with pytest.raises(ConfigErrors, match=r"^upstream 'smsc-a'.window: must be") as caught:
        parse_upstream({"name": "smsc-a", "system_id": "x", "window": 1001},
                       where="upstream 'smsc-a'")
    assert len(caught.value.errors) == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "a", "system_id": "x", "windw": 3},
         r"upstream 'a': unknown upstream key 'windw'; did you mean 'window'\?"),
        ({"system_id": "x"}, r"upstream.name: every upstream needs a name"),
        ({"name": "a b", "system_id": "x"}, r"upstream.name: must be text of 1 to 64"),
        ({"name": "a", "system_id": "sixteen-chars-xx"}, r"system_id: must be text of at most 15"),
        ({"name": "a", "system_id": "x", "port": True}, r"port: must be an integer.*got True"),
        ({"name": "a", "system_id": "x", "throughput": float("inf")}, "throughput: must be"),
        ({"name": "a", "system_id": "x", "mo_to": "3361"}, "mo_to: must be a list"),
        ({"name": "s", "type": "simulator", "mix": "delivered=-1"}, r"'s'.mix: outcome mix"),
    ],
)
def test_parse_upstream_refusals(raw, message):
    with pytest.raises(ConfigErrors, match=message):
        parse_upstream(raw)


def test_a_password_is_described_never_echoed():
    with pytest.raises(ConfigErrors) as caught:
        parse_upstream({"name": "a", "system_id": "x", "password": "TooLongS3cret",
                        "pasword": "S3cretToo"})
    text = str(caught.value)
    assert "password: must be text of at most 8 characters" in text
    assert "did you mean 'password'" in text
    assert "S3cret" not in text


def test_parse_upstream_refuses_what_is_no_table():
    with pytest.raises(ConfigErrors, match=r"upstreams\[0\]: must be a table"):
        resolve(("smsc-a",), ())


def test_upstream_config_built_directly_is_checked_too():
    # Before, host=10 was accepted and the connector died later on a TypeError.
    with pytest.raises(ConfigErrors, match=r"upstream 'a'.host: must be a host name"):
        UpstreamConfig(name="a", system_id="x", host=10)
    assert UpstreamConfig(name="s", type="simulator", latency_ms=10).latency_ms == 10.0


def test_parse_route_forms():
    route = parse_route({"prefix": "33", "account": "", "connectors": "a, b"})
    assert (route.prefix, route.account, route.connectors) == ("33", None, ("a", "b"))
    assert parse_route({"connectors": ["a"], "account": "acme"}).account == "acme"


def test_parse_route_lists_every_problem():
    with pytest.raises(ConfigErrors) as caught:
        parse_route({"prefix": 33, "account": "has space", "connectors": ["a", "a"],
                     "acount": "x"})
    messages = caught.value.messages
    assert messages[0] == "route: unknown route key 'acount'; did you mean 'account'?"
    assert any(m.startswith("route.prefix: must be a destination prefix of digits as text "
                            "(quoted in TOML)") and m.endswith("got 33") for m in messages)
    assert any(m.startswith("route.account: must be a system_id") for m in messages)
    assert "route.connectors: names 'a' more than once" in messages
    assert len(messages) == 4


def test_parse_route_checks_connectors_against_known_upstreams():
    with pytest.raises(ConfigErrors, match=r"route.connectors: names unknown connectors "
                                           r"\['smsc-b'\]; did you mean 'smsc-a'\?"):
        parse_route({"connectors": ["smsc-b"]}, upstreams=["smsc-a", "sim"])
    with pytest.raises(ConfigErrors, match=r"route.connectors: is required"):
        parse_route({"prefix": "33"})
    with pytest.raises(ConfigErrors, match=r"names no connectors"):
        parse_route({"connectors": []})


def test_resolve_reports_every_entry_at_once():
    upstreams = ({"name": "a", "system_id": "x", "port": 0},
                 {"name": "a", "system_id": "y"},
                 {"name": "b", "port": "x"})
    routes = ({"prefix": "33", "connectors": ["a", "zz"]},
              {"prefix": "33", "connectors": ["b"]},
              {"prefix": "+44", "connectors": ["a"]})
    with pytest.raises(ConfigErrors) as caught:
        resolve(upstreams, routes)
    messages = caught.value.messages
    assert messages == [
        "upstreams[0] 'a'.port: must be an integer between 1 and 65535, got 0",
        "upstreams[2] 'b'.port: must be an integer between 1 and 65535, got 'x'",
        "upstreams[2] 'b'.system_id: is required for an smpp upstream (type = \"smpp\")",
        "upstreams: upstream names must be unique; 'a' is used 2 times",
        "routes[0].connectors: names unknown connectors ['zz'] (configured: a, b)",
        ("routes[1]: has the same prefix '33' and account as routes[0], which always wins; "
         "merge their connectors"),
        ("routes[2].prefix: must be a destination prefix of digits as text (quoted in TOML), "
         "or '' for every destination, got '+44'"),
    ]


# --- upstream_url: every bad URL is a ConfigError without the password ---------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("smpp://acme:s3cret@host:abc", "the port must be a number"),
        ("smpp://acme:s3cret@host:99999", "the port must be a number"),
        ("smpp://acme:s3cret@[::1", "IPv6 address in [brackets]"),
        ("smpp://acme:s3cret@host:0", "upstream_url.port: must be an integer between 1"),
        ("smpp://acme:s3cret@host?window=x", "upstream_url.window: must be an integer"),
        ("smpp://acme:s3cret@host?throughput=fast", "upstream_url.throughput: must be"),
        ("smpp://acme:s3cret@host?tls_verify=maybe", "upstream_url.tls_verify: must be true"),
        ("smpp://acme:s3 cret@host:x", "smpp://acme:***@host:x"),
        ("smpp://acme:s3cret@host?password=s3cret-s3cret", "upstream_url.password: must be"),
        ("smpps://acme:s3cret@host?windows=3", "unknown parameter 'windows'; did you mean"),
    ],
)
def test_bad_upstream_urls_are_config_errors_without_the_password(url, words):
    with pytest.raises(ConfigError) as caught:
        upstream_from_url(url)
    assert words in str(caught.value)
    assert "s3cret" not in str(caught.value) and "s3 cret" not in str(caught.value)


def test_url_query_values_take_the_key_types():
    cfg = upstream_from_url("smpp://acme@h?tls_verify=no&mo_to=331,332&name=up-1&latency_ms=5")
    assert (cfg.tls_verify, cfg.mo_to, cfg.name, cfg.latency_ms) == (
        False, ("331", "332"), "up-1", 5.0)


def test_several_url_mistakes_are_reported_together():
    with pytest.raises(ConfigErrors) as caught:
        upstream_from_url("smpp://acme:pw@h?window=0&throughput=0&bogus=1")
    assert len(caught.value.errors) == 3
