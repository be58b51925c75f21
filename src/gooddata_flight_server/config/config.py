"""Compatibility: the original package's module path; see ``gooddata_flight_server.settings``."""

from gooddata_flight_server._settings_load import load_settings as read_config
from gooddata_flight_server.settings import AuthenticationMethod, OtelConfig, OtelExporterType, ServerConfig

__all__ = ["AuthenticationMethod", "OtelConfig", "OtelExporterType", "ServerConfig", "read_config"]
