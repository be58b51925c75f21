"""Health: module statuses reported by the server and user code, and the probe endpoints.

The module layout is the original package's: ``health.server_health_monitor`` and
``health.health_check_http_server``.
"""

from gooddata_flight_server.health.health_check_http_server import HealthCheckServer
from gooddata_flight_server.health.server_health_monitor import ModuleHealthStatus, ServerHealthMonitor

__all__ = ["HealthCheckServer", "ModuleHealthStatus", "ServerHealthMonitor"]
