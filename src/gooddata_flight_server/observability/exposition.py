"""The Prometheus endpoint: serves a registry (the process default one unless told) at ``/metrics``.

Serving ``prometheus_client.REGISTRY`` (not a registry of our own) is what makes a user's plain
``prometheus_client.Counter(...)`` appear next to the server's ``gdfs_*`` metrics. The body and
content type are prometheus_client's own exposition (text or OpenMetrics by ``Accept``, gzip by
``Accept-Encoding``, the ``name[]`` filter), as its WSGI app would serve them.
"""

from __future__ import annotations

import gzip
import urllib.parse
from typing import cast

import prometheus_client
import structlog
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector, CollectorRegistry

from gooddata_flight_server._http import HttpLimits, HttpServer, Request, Response

__all__ = ["MetricsServer"]

log = structlog.get_logger(__name__)


class MetricsServer:
    """A lifecycle subsystem: the HTTP endpoint runs from ``start()`` to ``stop()``.

    Collection runs user collectors, which may be slow or even hang, so it happens on ``workers``
    threads rather than on the endpoint's selector thread: a stuck collector costs 503 answers
    after ``limits.handler_timeout_sec``, never the endpoint.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: Collector | None = None,
        limits: HttpLimits | None = None,
        workers: int = 1,
    ) -> None:
        self._host = host
        self._port = port
        self._registry = registry
        self._limits = limits
        self._workers = workers
        self._served: HttpServer | None = None

    @property
    def port(self) -> int | None:
        """The bound port (the real one when configured as 0); None until started."""
        return None if self._served is None else self._served.port

    @property
    def name(self) -> str:
        """The ``endpoint`` label of ``gdfs_http_open_connections``."""
        return "metrics"

    @property
    def open_connections(self) -> int:
        """Connections open to the endpoint right now (0 when stopped)."""
        return 0 if self._served is None else self._served.open_connections

    def start(self) -> None:
        served = HttpServer(
            "metrics",
            self._host,
            self._port,
            {"/metrics": self._metrics},
            limits=self._limits,
            workers=self._workers,
            thread_name="gdfs-metrics",
        )
        served.start()
        self._served = served
        log.info("metrics_listening", host=self._host, port=self.port)

    def stop(self) -> None:
        served, self._served = self._served, None
        if served is not None:
            served.stop()

    def _metrics(self, request: Request) -> Response:
        registry = prometheus_client.REGISTRY if self._registry is None else self._registry
        names = urllib.parse.parse_qs(request.query).get("name[]")
        if names and isinstance(registry, CollectorRegistry):
            # a RestrictedRegistry collects like a Collector without being one
            registry = cast(Collector, registry.restricted_registry(names))
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = encoder(registry)
        headers = [("Content-Type", content_type)]
        if gzip_accepted(request.headers.get("accept-encoding", "")):
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, body, tuple(headers))
