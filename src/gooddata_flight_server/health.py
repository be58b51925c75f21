"""Health of the server's modules, as reported by the server and by user code.

The monitor is the ground truth behind the ``/live`` and ``/ready`` endpoints: any module that
reports ``NOT_OK`` makes the whole server not live; readiness follows the server lifecycle.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from types import MappingProxyType

import structlog

from gooddata_flight_server._http import HttpLimits, HttpServer, plain

__all__ = ["HealthCheckServer", "ModuleHealthStatus", "ServerHealthMonitor"]

log = structlog.get_logger(__name__)


class ModuleHealthStatus(enum.Enum):
    OK = "ok"
    NOT_OK = "not-ok"


class ServerHealthMonitor:
    """Thread-safe registry of module statuses plus the server's readiness flag.

    Modules report from any thread (RPC handlers, tasks, housekeeping); readers take a consistent
    snapshot. A status change is logged once, not on every report, so a module can report freely.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: dict[str, ModuleHealthStatus] = {}
        self._not_ok = 0
        self._ready = False

    def set_module_status(self, module: str, status: ModuleHealthStatus) -> None:
        if not isinstance(status, ModuleHealthStatus):
            raise TypeError(f"status must be a ModuleHealthStatus, got {status!r}")
        with self._lock:
            previous = self._statuses.get(module)
            if previous is status:
                return
            self._statuses[module] = status
            if previous is ModuleHealthStatus.NOT_OK:
                self._not_ok -= 1
            if status is ModuleHealthStatus.NOT_OK:
                self._not_ok += 1
        log.info(
            "module_status_changed",
            module=module,
            status=status.value,
            previous=getattr(previous, "value", None),
        )

    @property
    def module_statuses(self) -> Mapping[str, ModuleHealthStatus]:
        """A snapshot of every module's last reported status."""
        with self._lock:
            return MappingProxyType(dict(self._statuses))

    def is_alive(self) -> bool:
        """True while no module is NOT_OK."""
        return self._not_ok == 0

    def is_ready(self) -> bool:
        """True while the server is started and serving (not before, and not once shutdown began)."""
        return self._ready

    def set_ready(self, ready: bool) -> None:
        """Flipped by the server lifecycle only."""
        self._ready = ready


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
    def port(self) -> int:
        assert self._served is not None, "health check server not started"
        return self._served.port

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
