"""The health and metrics endpoints as subsystems, through real loopback HTTP."""

from __future__ import annotations

import contextlib
import gzip
import socket
import time
import urllib.request
from collections.abc import Iterator

import prometheus_client
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

import gooddata_flight_server as gf
from gooddata_flight_server._http import HttpLimits
from gooddata_flight_server.health import HealthCheckServer, ServerHealthMonitor
from gooddata_flight_server.observability.exposition import MetricsServer
from gooddata_flight_server.testing import running_server
from tests.raw_http import RawClient

WAIT = 10.0

DEFAULT_REGISTRY_COUNTER = prometheus_client.Counter(
    "test_http_default_registry", "Declared the plain way: lands in prometheus_client.REGISTRY."
)


@contextlib.contextmanager
def health_endpoint(
    monitor: ServerHealthMonitor, host: str = "127.0.0.1", limits: HttpLimits | None = None
) -> Iterator[HealthCheckServer]:
    endpoint = HealthCheckServer(monitor, host, 0, limits=limits)
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@contextlib.contextmanager
def metrics_endpoint(registry: prometheus_client.CollectorRegistry | None) -> Iterator[MetricsServer]:
    endpoint = MetricsServer("127.0.0.1", 0, registry=registry)
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def registry() -> prometheus_client.CollectorRegistry:
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.Counter("test_http_calls", "Calls.", ["kind"], registry=registry).labels("a").inc(3)
    prometheus_client.Gauge("test_http_level", "Level.", registry=registry).set(7)
    return registry


def test_health_get_and_head_follow_the_monitor() -> None:
    """/ready and /live answer 202 or 500 as the monitor says, to GET and HEAD alike."""
    monitor = ServerHealthMonitor()
    with health_endpoint(monitor) as endpoint, RawClient(endpoint.port) as client:
        assert client.get("/ready").status == 500
        assert client.get("/live").status == 202
        monitor.set_ready(True)
        monitor.set_module_status("db", gf.ModuleHealthStatus.NOT_OK)
        get, head = client.get("/ready"), client.get("/ready", method="HEAD")
        assert get.status == head.status == 202
        assert get.headers.keys() == head.headers.keys()
        assert get.headers["content-length"] == head.headers["content-length"] == str(len(get.body))
        assert head.body == b""
        assert client.get("/live", method="HEAD").status == 500


@pytest.mark.parametrize("path", ["/metrics", "/", "/ready/", "/readyx", "/favicon.ico"])
def test_health_unknown_paths_are_404(path: str) -> None:
    """Only /ready and /live are served (a query string aside)."""
    with health_endpoint(ServerHealthMonitor()) as endpoint, RawClient(endpoint.port) as client:
        assert client.get(path).status == 404
        assert client.get("/live?verbose=1").status == 202


@pytest.mark.parametrize("path", ["/ready", "/metrics"])
def test_other_methods_are_405(registry: prometheus_client.CollectorRegistry, path: str) -> None:
    """POST, PUT, DELETE and OPTIONS are 405 with Allow on both endpoints."""
    with health_endpoint(ServerHealthMonitor()) as health, metrics_endpoint(registry) as metrics:
        port = health.port if path == "/ready" else metrics.port
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            with RawClient(port) as client:
                answer = client.get(path, method=method)
                assert (answer.status, answer.headers["allow"]) == (405, "GET, HEAD")


def test_no_version_banner(registry: prometheus_client.CollectorRegistry) -> None:
    """No Server header, and no Python or library version anywhere in the answer heads."""
    with health_endpoint(ServerHealthMonitor()) as health, metrics_endpoint(registry) as metrics:
        for port, path in ((health.port, "/live"), (metrics.port, "/metrics"), (metrics.port, "/x")):
            with RawClient(port) as client:
                answer = client.get(path, method="POST" if path == "/x" else "GET")
            assert "server" not in answer.headers
            assert "python" not in str(answer.headers).lower()


def test_oversized_heads_are_431() -> None:
    """A request head over 8 KiB gets 431 and a closed connection."""
    with health_endpoint(ServerHealthMonitor()) as endpoint, RawClient(endpoint.port) as client:
        answer = client.get("/live", X_Big="b" * 9000)
        assert answer.status == 431
        assert client.wait_closed(WAIT) is not None


def test_health_probes_reuse_a_kept_alive_connection_until_the_endpoint_stops() -> None:
    """Probes may reuse one connection; stopping the endpoint closes it at once."""
    monitor = ServerHealthMonitor()
    with health_endpoint(monitor) as endpoint, RawClient(endpoint.port) as client:
        assert [client.get("/live").status for _ in range(5)] == [202] * 5
        assert endpoint.open_connections == 1
        start = time.monotonic()
        endpoint.stop()
        assert time.monotonic() - start < 0.5
        assert client.wait_closed(WAIT) is not None
        assert endpoint.open_connections == 0


def test_stop_is_quick_with_hostile_connections_open() -> None:
    """With idle, half-sent and kept-alive connections open, stop() takes well under a second."""
    with health_endpoint(ServerHealthMonitor()) as endpoint:
        clients = [RawClient(endpoint.port) for _ in range(30)]
        for i, client in enumerate(clients):
            if i % 3 == 1:
                client.send(b"GET /live HTTP/1.1\r\nX-Slo")
            elif i % 3 == 2:
                client.get("/live")
        start = time.monotonic()
        endpoint.stop()
        assert time.monotonic() - start < 0.5
        assert all(client.wait_closed(WAIT) is not None for client in clients)
        for client in clients:
            client.close()


def test_metrics_body_is_prometheus_clients_exposition(registry: prometheus_client.CollectorRegistry) -> None:
    """/metrics serves exactly generate_latest of the registry, with its content type."""
    with metrics_endpoint(registry) as endpoint, RawClient(endpoint.port) as client:
        answer = client.get("/metrics")
        assert answer.status == 200
        assert answer.body == generate_latest(registry)
        assert answer.headers["content-type"] == prometheus_client.CONTENT_TYPE_PLAIN_0_0_4
        head = client.get("/metrics", method="HEAD")
        assert head.headers["content-length"] == str(len(answer.body)) and head.body == b""
        assert client.get("/metrics?foo=bar").body == answer.body


def test_metrics_openmetrics_gzip_and_name_filter(registry: prometheus_client.CollectorRegistry) -> None:
    """Accept chooses OpenMetrics, Accept-Encoding gzip compresses, name[] filters, as prometheus_client."""
    with metrics_endpoint(registry) as endpoint, RawClient(endpoint.port) as client:
        open_metrics = client.get("/metrics", Accept="application/openmetrics-text; version=1.0.0")
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert open_metrics.body == generate_openmetrics(registry)
        zipped = client.get("/metrics", Accept_Encoding="gzip")
        assert zipped.headers["content-encoding"] == "gzip"
        assert gzip.decompress(zipped.body) == generate_latest(registry)
        filtered = client.get("/metrics?name[]=test_http_level").body.decode()
        assert "test_http_level 7.0" in filtered and "test_http_calls" not in filtered


@pytest.mark.parametrize("path", ["/", "/metric", "/metrics/", "/favicon.ico", "/ready"])
def test_metrics_answers_only_on_metrics(registry: prometheus_client.CollectorRegistry, path: str) -> None:
    """Paths other than /metrics are 404."""
    with metrics_endpoint(registry) as endpoint, RawClient(endpoint.port) as client:
        assert client.get(path).status == 404


def test_metrics_serves_the_default_registry_unless_told() -> None:
    """Without a registry argument the process default registry is served."""
    DEFAULT_REGISTRY_COUNTER.inc()
    with metrics_endpoint(None) as endpoint:
        with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=WAIT) as response:
            assert b"test_http_default_registry_total" in response.read()


def test_endpoints_on_ipv6_loopback() -> None:
    """health_check_host and metrics_host may be IPv6 addresses; the URLs carry them bracketed."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"no IPv6 loopback: {e}")
    endpoints = {"health_check_host": "::1", "health_check_port": 0, "metrics_host": "::1", "metrics_port": 0}
    settings = {"server": endpoints}
    with running_server(gf.FlightServerMethods(), settings) as server:
        assert server.health_check_url is not None and server.health_check_url.startswith("http://[::1]:")
        assert server.metrics_url is not None
        with urllib.request.urlopen(f"{server.health_check_url}/ready", timeout=WAIT) as response:
            assert response.status == 202
        with urllib.request.urlopen(server.metrics_url, timeout=WAIT) as response:
            assert response.status == 200
