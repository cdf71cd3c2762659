"""Upstream and route settings (config/upstreams): the defaults, the upstream_url
shortcut, TOML tables, and the mistakes refused when settings load."""

from __future__ import annotations

import pytest

from config.errors import ConfigError
from config.settings import Settings
from config.upstreams import resolve, upstream_from_url


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
        ({"upstreams": [{"name": "a", "host": "h"}]}, "system_id is required"),
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
