"""The version of this smppgw and the Python running it: what `smppgw --version` prints
and the `smppgw_build_info` metric carries. Read from the installed distribution's
metadata, so one number (pyproject.toml) says it everywhere."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("smppgw")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"

PYTHON = platform.python_version()
