"""The HTTP endpoint for Kubernetes probes: ``/ready`` and ``/live``, a lifecycle subsystem."""

from __future__ import annotations

import structlog

from gooddata_flight_server._http import HttpLimits, HttpServer, plain
from gooddata_flight_server.health.server_health_monitor import ServerHealthMonitor

__all__ = ["HealthCheckServer"]

log = structlog.get_logger(__name__)


class HealthCheckServer:
    """The HTTP endpoint for Kubernetes probes, a lifecycle subsystem of the server.

    ``GET``/``HEAD`` of ``/ready`` and ``/live``: 202 when healthy, 500 when not. Answers are made on
    the endpoint's selector thread (two flag reads), so no worker thread is needed.
    """

    def __init__(
        self, monitor: ServerHealthMonitor, host: str, port: int, *, limits: HttpLimits | None = None
    ) -> None:
        self._monitor = monitor
        self._host = host
        self._port = port
        self._limits = limits
        self._served: HttpServer | None = None

    @property
    def port(self) -> int | None:
        """The bound port (the real one when configured as 0); None until started."""
        return None if self._served is None else self._served.port

    @property
    def name(self) -> str:
        """The ``endpoint`` label of ``gdfs_http_open_connections``."""
        return "health"

    @property
    def open_connections(self) -> int:
        """Connections open to the endpoint right now (0 when stopped)."""
        return 0 if self._served is None else self._served.open_connections

    def start(self) -> None:
        routes = {
            "/ready": lambda _: plain(202 if self._monitor.is_ready() else 500),
            "/live": lambda _: plain(202 if self._monitor.is_alive() else 500),
        }
        served = HttpServer(
            "health check", self._host, self._port, routes, limits=self._limits, thread_name="gdfs-health"
        )
        served.start()
        self._served = served
        log.info("health_check_listening", host=self._host, port=self.port)

    def stop(self) -> None:
        served, self._served = self._served, None
        if served is not None:
            served.stop()
