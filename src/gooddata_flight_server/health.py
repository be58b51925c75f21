"""Health of the server's modules, as reported by the server and by user code.

The monitor is the ground truth behind the ``/live`` and ``/ready`` endpoints: any module that
reports ``NOT_OK`` makes the whole server not live; readiness follows the server lifecycle.
"""

from __future__ import annotations

import enum
import http
import http.server
import socket
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import structlog

from gooddata_flight_server._background_http import BackgroundHttp, bind_or_explain

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


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    """``GET /ready`` and ``GET /live``: 202 when healthy, 500 when not; anything else 404."""

    monitor: ServerHealthMonitor  # set on the per-server subclass
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/ready":
            self._answer(202 if self.monitor.is_ready() else 500)
        elif path == "/live":
            self._answer(202 if self.monitor.is_alive() else 500)
        else:
            self._answer(404)

    def _answer(self, status: int) -> None:
        body = http.HTTPStatus(status).phrase.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        # one answer per connection: a probe's kept-alive connection must not outlive the server
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes hit these endpoints every few seconds: keep them out of the logs."""


class _HttpServer6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


class HealthCheckServer:
    """The HTTP endpoint for Kubernetes probes, a lifecycle subsystem of the server."""

    def __init__(self, monitor: ServerHealthMonitor, host: str, port: int) -> None:
        self._monitor = monitor
        self._host = host
        self._port = port
        self._served: BackgroundHttp | None = None

    @property
    def port(self) -> int:
        assert self._served is not None, "health check server not started"
        return self._served.port

    def start(self) -> None:
        handler = type("HealthHandler", (_HealthHandler,), {"monitor": self._monitor})
        server_class = _HttpServer6 if ":" in self._host else http.server.ThreadingHTTPServer
        httpd = bind_or_explain(
            "health check", self._host, self._port, lambda: server_class((self._host, self._port), handler)
        )
        self._served = BackgroundHttp(httpd, "gdfs-health")
        log.info("health_check_listening", host=self._host, port=self.port)

    def stop(self) -> None:
        served, self._served = self._served, None
        if served is not None:
            served.stop()
