"""The Prometheus endpoint: serves the process default registry at ``/metrics``.

Serving ``prometheus_client.REGISTRY`` (not a registry of our own) is what makes a user's plain
``prometheus_client.Counter(...)`` appear next to the server's ``gdfs_*`` metrics.
"""

from __future__ import annotations

import socket
import socketserver
import wsgiref.simple_server
from typing import Any

import prometheus_client
import structlog

from gooddata_flight_server._background_http import BackgroundHttp, bind_or_explain

__all__ = ["MetricsServer"]

log = structlog.get_logger(__name__)


class _Server(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes come every few seconds: keep them out of the logs."""


class MetricsServer:
    """A lifecycle subsystem: the HTTP endpoint runs from ``start()`` to ``stop()``."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._served: BackgroundHttp | None = None

    @property
    def port(self) -> int:
        assert self._served is not None, "metrics server not started"
        return self._served.port

    def start(self) -> None:
        # built here rather than with start_http_server so that serve_forever polls often enough for
        # stop() to be quick (its default half-second poll would add up to 0.5 s to every shutdown)
        app = prometheus_client.make_wsgi_app(prometheus_client.REGISTRY)
        server_class = _Server6 if ":" in self._host else _Server
        httpd = bind_or_explain(
            "metrics",
            self._host,
            self._port,
            lambda: wsgiref.simple_server.make_server(
                self._host, self._port, app, server_class, handler_class=_QuietHandler
            ),
        )
        self._served = BackgroundHttp(httpd, "gdfs-metrics")
        log.info("metrics_listening", host=self._host, port=self.port)

    def stop(self) -> None:
        served, self._served = self._served, None
        if served is not None:
            served.stop()
