"""Gateway configuration: the `Settings` object and how it is loaded and validated."""

from config.errors import ConfigError
from config.loader import load_settings
from config.settings import Settings

__all__ = ["ConfigError", "Settings", "load_settings"]
