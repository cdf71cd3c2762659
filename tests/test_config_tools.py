"""The configuration tools as an operator runs them: `smppgw config check` (every mistake
listed, exit 2), `smppgw config show` (values and sources, never a password),
`smppgw --version`, and the sample config/smppgw.example.toml kept in step with Settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from config.loader import load_settings
from config.settings import Settings
from config.upstreams import UpstreamConfig
from gateway.version import PYTHON, VERSION

SMPPGW = [sys.executable, "-m", "gateway.cli"]
SAMPLE = Path(__file__).resolve().parent.parent / "config" / "smppgw.example.toml"
# Upstream passwords fit SMPP 3.4's 8 characters, or the upstream would be refused.
SECRETS = ("fileS3cret", "envS3cret", "urlS3crt", "dbS3cret", "up8Secr")


def smppgw(*args: str, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SMPPGW_")}
    return subprocess.run([*SMPPGW, *args], capture_output=True, text=True, timeout=120,
                          check=False, env={**clean, **(env or {})}, cwd=cwd)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smppgw.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- config check ---------------------------------------------------------------------------

BROKEN_UPSTREAM = """
node_id = 5000
[[upstreams]]
name = "smsc-a"
host = 10
port = "x"
tls = "yes"
window = 0
throughput = -1
pasword = "fileS3cret"
system_id = "acme"

[[routes]]
prefix = "33"
connectors = ["smsc-a", "smsc-z"]
"""


def test_check_lists_every_mistake_of_a_broken_upstream_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN_UPSTREAM)
    result = smppgw("config", "check", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    expected = [
        rf"node_id: must be an integer between 0 and 1023, got 5000 \(from {path}\)",
        rf"upstreams\[0\] 'smsc-a'.host: must be a host name .*, got 10 \(from {path}\)",
        r"upstreams\[0\] 'smsc-a'.port: must be an integer between 1 and 65535, got 'x'",
        r"upstreams\[0\] 'smsc-a'.tls: must be true or false, got 'yes'",
        r"upstreams\[0\] 'smsc-a'.window: must be an integer between 1 and 1000, got 0",
        r"upstreams\[0\] 'smsc-a'.throughput: must be a positive number .*, got -1",
        r"upstreams\[0\] 'smsc-a': unknown upstream key 'pasword'; did you mean 'password'\?",
        r"routes\[0\].connectors: names unknown connectors \['smsc-z'\]",
    ]
    lines = result.stderr.splitlines()
    for pattern in expected:
        assert any(re.search(pattern, line) for line in lines), (pattern, result.stderr)
    assert all(line.startswith("smppgw: configuration error: ") for line in lines)
    assert len(lines) == len(expected)
    assert "Traceback" not in result.stderr and "fileS3cret" not in result.stderr


def test_check_passes_a_good_file_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[upstreams]]
name = "smsc-a"
system_id = "acme"
password = "pw"
[[upstreams]]
name = "sim"
type = "simulator"
[[routes]]
prefix = "33"
connectors = ["smsc-a", "sim"]
[[routes]]
connectors = ["sim"]
""")
    result = smppgw("config", "check", "--config", str(path))
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "configuration OK (2 upstreams, 2 routes)\n", "")


def test_check_reads_the_file_named_by_smppgw_config(tmp_path: Path) -> None:
    path = write(tmp_path, "smpp_port = 70000\n")
    result = smppgw("config", "check", env={"SMPPGW_CONFIG": str(path)})
    assert result.returncode == 2
    assert "smpp_port: must be an integer between 0 and 65535" in result.stderr
    assert str(path) in result.stderr


def test_check_reports_bad_environment_values_with_their_variable(tmp_path: Path) -> None:
    result = smppgw("config", "check", env={"SMPPGW_SMPP_PORT": "abc",
                                            "SMPPGW_BIND_TIMEOUT": "soon"})
    assert result.returncode == 2
    assert "(from SMPPGW_SMPP_PORT)" in result.stderr
    assert "(from SMPPGW_BIND_TIMEOUT)" in result.stderr


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("smpp://acme:urlS3cret@host:abc", "the port must be a number"),
        ("smpp://acme:urlS3cret@[::1:2775", "IPv6 address in [brackets]"),
        ("smpp://acme:urlS3cret@host:2775?window=abc", "upstream_url.window: must be an integer"),
        ("smpp://acme:urlS3cret@host:2775?tls=maybe", "upstream_url.tls: must be true or false"),
        ("smpp://acme:urlS3cret@host:2775?windw=3", "unknown parameter 'windw'; did you mean"),
        ("smpp://acme:url S3cret@host:x", "(from SMPPGW_UPSTREAM_URL)"),
        ("smpp://acme:urlS3cret@host:2775?password=up8Secr-too-long", "upstream_url.password"),
        ("http://acme:urlS3cret@host", "must be an smpp"),
    ],
)
def test_a_bad_upstream_url_is_a_clear_error_without_traceback_or_password(
    url: str, words: str
) -> None:
    result = smppgw("config", "check", env={"SMPPGW_UPSTREAM_URL": url})
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    for secret in ("urlS3cret", "S3cret", "up8Secr"):
        assert secret not in result.stderr


def test_serve_reports_a_bad_upstream_url_without_traceback(tmp_path: Path) -> None:
    result = smppgw("serve", "--state-dir", str(tmp_path / "state"),
                    env={"SMPPGW_UPSTREAM_URL": "smpp://acme:urlS3cret@host:abc"})
    assert result.returncode == 2
    assert "configuration error: upstream_url" in result.stderr
    assert "Traceback" not in result.stderr and "urlS3cret" not in result.stderr


# --- config show ----------------------------------------------------------------------------

SHOWN = """
smtp_host = "mail.test"
smtp_user = "gw"
smtp_password = "fileS3cret"
smpp_port = 2800
[[upstreams]]
name = "smsc-a"
system_id = "acme"
password = "up8Secr"
"""


def _show_env(path: Path) -> dict[str, str]:
    return {
        "SMPPGW_CONFIG": str(path),
        "SMPPGW_DATABASE_URL": "postgresql+asyncpg://gw:dbS3cret@db/gw?password=dbS3cret",
        "SMPPGW_UPSTREAM_URL": "smpp://acme:urlS3crt@10.0.0.7:2775?window=20",
        "SMPPGW_NODE_ID": "7",
    }


def test_show_prints_values_and_sources_and_never_a_password(tmp_path: Path) -> None:
    path = write(tmp_path, SHOWN)
    result = smppgw("config", "show", env=_show_env(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for secret in SECRETS:
        assert secret not in out
    assert re.search(rf"^smpp_port = 2800 +# {re.escape(str(path))}$", out, re.MULTILINE)
    assert re.search(r"^node_id = 7 +# SMPPGW_NODE_ID$", out, re.MULTILINE)
    assert re.search(r"^bind_timeout = 30.0 +# default$", out, re.MULTILINE)
    assert re.search(rf'^smtp_password = "\*\*\*" +# {re.escape(str(path))}$', out, re.MULTILINE)
    assert "postgresql+asyncpg://gw:***@db/gw?password=***" in out
    assert "smpp://acme:***@10.0.0.7:2775?window=20" in out
    # Both upstreams, the file's and the URL's, each with its password masked.
    assert out.count("[[upstreams]]") == 2
    assert len(re.findall(r'^password = "\*\*\*"$', out, re.MULTILINE)) == 2


def test_show_json_has_every_setting_with_its_source(tmp_path: Path) -> None:
    path = write(tmp_path, SHOWN)
    env = {**_show_env(path), "SMPPGW_SMTP_PASSWORD": "envS3cret"}
    result = smppgw("config", "show", "--json", env=env)
    assert result.returncode == 0, result.stderr
    for secret in SECRETS:
        assert secret not in result.stdout
    document = json.loads(result.stdout)
    settings = document["settings"]
    assert set(settings) == {f.name for f in fields(Settings)} - {"upstreams", "routes"}
    assert settings["smpp_port"] == {"value": 2800, "source": str(path)}
    assert settings["node_id"] == {"value": 7, "source": "SMPPGW_NODE_ID"}
    assert settings["smtp_password"] == {"value": "***", "source": "SMPPGW_SMTP_PASSWORD"}
    assert settings["tls_port"] == {"value": None, "source": "default"}
    assert document["config_file"] == str(path)
    upstreams = {u["name"]: u for u in document["upstreams"]}
    assert upstreams["smsc-a"]["source"] == str(path)
    assert upstreams["default"]["source"] == "SMPPGW_UPSTREAM_URL"
    assert upstreams["default"]["window"] == 20
    assert {u["password"] for u in upstreams.values()} == {"***"}
    assert set(upstreams["smsc-a"]) == {f.name for f in fields(UpstreamConfig)} | {"source"}


def test_show_refuses_a_bad_configuration_like_check(tmp_path: Path) -> None:
    path = write(tmp_path, 'smtp_password = 12345\nsmpp_port = "x"\n')
    result = smppgw("config", "show", "--config", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert "smpp_port" in result.stderr and "12345" not in result.stderr


# --- --version ------------------------------------------------------------------------------


def test_version_names_smppgw_and_python() -> None:
    result = smppgw("--version")
    assert result.returncode == 0
    assert result.stdout == f"smppgw {VERSION} (Python {PYTHON})\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", PYTHON)


# --- the sample configuration ---------------------------------------------------------------


def test_the_sample_loads_and_passes_check() -> None:
    settings = load_settings(SAMPLE, env={})
    assert [u["name"] for u in settings.upstreams] == ["simulator"]
    result = smppgw("config", "check", "--config", str(SAMPLE))
    assert (result.returncode, result.stdout) == (0, "configuration OK (1 upstream, 1 route)\n")


def _sample_lines() -> dict[str, str]:
    """Setting name -> the value text of its commented-out line in the sample."""
    text = SAMPLE.read_text(encoding="utf-8").split("\n[[upstreams]]", 1)[0]
    return dict(re.findall(r"^# (\w+) = (.+)$", text, re.MULTILINE))


def test_the_sample_mentions_every_setting_with_its_default() -> None:
    lines = _sample_lines()
    defaults = {f.name: f.default for f in fields(Settings)}
    tables = {"upstreams", "routes"}
    assert set(defaults) - tables <= set(lines), "settings missing from the sample"
    assert set(lines) <= set(defaults), "the sample names settings that do not exist"
    for name, text in lines.items():
        value = tomllib.loads(f"v = {text}")["v"]
        if defaults[name] is None:
            continue  # an example of what to set, not a default
        assert value == (str(defaults[name]) if isinstance(defaults[name], Path)
                         else defaults[name]), name
    sample = SAMPLE.read_text(encoding="utf-8")
    assert "[[upstreams]]" in sample and "[[routes]]" in sample


def test_the_sample_shows_every_upstream_key() -> None:
    sample = SAMPLE.read_text(encoding="utf-8").split("\n[[upstreams]]", 1)[1]
    mentioned = set(re.findall(r"^#? ?(\w+) = ", sample, re.MULTILINE))
    assert {f.name for f in fields(UpstreamConfig)} <= mentioned
