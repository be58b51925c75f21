"""The Prometheus endpoint: serves the process default registry at ``/metrics``.

Serving ``prometheus_client.REGISTRY`` (not a registry of our own) is what makes a user's plain
``prometheus_client.Counter(...)`` appear next to the server's ``gdfs_*`` metrics.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import wsgiref.simple_server
from typing import Any

import prometheus_client
import structlog

__all__ = ["MetricsServer"]

log = structlog.get_logger(__name__)

_POLL_INTERVAL_SEC = 0.05  # how soon serve_forever notices a shutdown request


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
        self._httpd: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "metrics server not started"
        return int(self._httpd.server_port)

    def start(self) -> None:
        # built here rather than with start_http_server so that serve_forever polls often enough for
        # stop() to be quick (its default half-second poll would add up to 0.5 s to every shutdown)
        app = prometheus_client.make_wsgi_app(prometheus_client.REGISTRY)
        server_class = _Server6 if ":" in self._host else _Server
        try:
            self._httpd = wsgiref.simple_server.make_server(
                self._host, self._port, app, server_class, handler_class=_QuietHandler
            )
        except OSError as e:
            raise OSError(
                f"cannot bind the metrics endpoint to {self._host}:{self._port}: {e.strerror}"
            ) from e
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(_POLL_INTERVAL_SEC,), name="gdfs-metrics", daemon=True
        )
        self._thread.start()
        log.info("metrics_listening", host=self._host, port=self.port)

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None
