"""Gateway configuration: the `Settings` object and how it is loaded and validated."""

from config.errors import ConfigError, ConfigErrors
from config.loader import load_settings, load_settings_with_sources
from config.settings import Settings

__all__ = ["ConfigError", "ConfigErrors", "Settings", "load_settings", "load_settings_with_sources"]
