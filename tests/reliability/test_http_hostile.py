"""Hostile connections to the health and metrics endpoints: probes still answer, threads stay bounded.

Hundreds of connections per endpoint are opened and left hanging: a third never send a byte, a
third send a request head one byte at a time and never finish it, a third are kept alive after
an answer and then say nothing. Meanwhile ``/ready`` and ``/metrics`` must answer within a second,
no thread may be added, and the server must close every hostile connection once its deadline
passes. Two caps: the default one (128), where new connections push out the longest-waiting ones,
and one above the number of hostile connections, where all of them are held until they time out.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import prometheus_client
import pytest

from gooddata_flight_server._http import HttpLimits
from gooddata_flight_server.health import HealthCheckServer, ServerHealthMonitor
from gooddata_flight_server.observability.exposition import MetricsServer
from tests.raw_http import RawClient
from tests.reliability.conftest import WAIT, wait_until

TIMEOUT = 2.0  # the endpoints' timeout_sec here: short, so the test waits little for the closes
PROBE_LIMIT = 1.0  # seconds a probe may take while the hostile connections are open
PARTIAL_HEAD = b"GET /ready HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"s" * 1000
TRICKLE_EVERY = 0.1  # seconds between two bytes of a partial head


class _Hostile:
    """One connection that never makes a complete request (after at most one answered one)."""

    def __init__(self, port: int, kind: str) -> None:
        self.kind = kind
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        if kind == "kept-alive":
            self.sock.sendall(b"GET /nothing-here HTTP/1.1\r\nHost: test\r\n\r\n")
        self.sock.setblocking(False)
        self.sent = 0
        self.closed_at: float | None = None

    def trickle(self) -> None:
        if self.kind == "partial" and self.closed_at is None and self.sent < len(PARTIAL_HEAD):
            try:
                self.sent += self.sock.send(PARTIAL_HEAD[self.sent : self.sent + 1])
            except BlockingIOError:
                pass
            except OSError:  # reset by the server
                self.closed_at = time.monotonic()

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)  # the kept-alive ones get their 404 first
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data and self.closed_at is None:
            self.closed_at = time.monotonic()


@contextlib.contextmanager
def _endpoints(limits: HttpLimits) -> Iterator[tuple[HealthCheckServer, MetricsServer]]:
    monitor = ServerHealthMonitor()
    monitor.set_ready(True)
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.Counter("test_hostile_probe", "A metric to serve.", registry=registry).inc()
    health = HealthCheckServer(monitor, "127.0.0.1", 0, limits=limits)
    metrics = MetricsServer("127.0.0.1", 0, registry=registry, limits=limits)
    health.start()
    try:
        metrics.start()
        try:
            yield health, metrics
        finally:
            metrics.stop()
    finally:
        health.stop()


def _probe(port: int, path: str) -> tuple[int, float]:
    """A fresh connection per probe, as kubelet does; the status and how long it took."""
    start = time.monotonic()
    with RawClient(port, timeout=PROBE_LIMIT) as client:
        status = client.get(path).status
    return status, time.monotonic() - start


def _wait_all_closed(hostile: list[_Hostile], deadline: float) -> None:
    """Read each connection until the server closes it, trickling the partial heads meanwhile."""
    with selectors.DefaultSelector() as selector:
        for connection in hostile:
            selector.register(connection.sock, selectors.EVENT_READ, connection)
        last_trickle = 0.0
        while selector.get_map():
            assert time.monotonic() < deadline, f"{len(selector.get_map())} hostile connections still open"
            for key, _ in selector.select(TRICKLE_EVERY / 2):
                key.data.on_readable()
            if time.monotonic() - last_trickle >= TRICKLE_EVERY:
                last_trickle = time.monotonic()
                for connection in hostile:
                    connection.trickle()
            for connection in hostile:
                if connection.closed_at is not None and connection.sock in selector.get_map():
                    selector.unregister(connection.sock)


@pytest.mark.parametrize("holding", [False, True], ids=["evicting", "holding"])
@pytest.mark.parametrize("count", [300, pytest.param(2000, marks=pytest.mark.slow)])
def test_probes_answer_under_hostile_connections(count: int, holding: bool) -> None:
    """With ``count`` hostile connections per endpoint, probes answer in under a second, no thread is added,
    and the server closes every hostile connection by its deadline."""
    # a backlog the burst fits in: a connection the kernel drops is retried only after 1 s, by which
    # time the first hostile connections are past their deadline (and the test measures nothing)
    limits = HttpLimits(
        timeout_sec=TIMEOUT, max_connections=count + 16 if holding else 128, backlog=2 * count + 16
    )
    with _endpoints(limits) as (health, metrics):
        assert _probe(health.port, "/ready")[0] == 202 and _probe(metrics.port, "/metrics")[0] == 200
        threads_before = threading.active_count()
        opened = time.monotonic()
        hostile = [
            _Hostile(port, ("idle", "partial", "kept-alive")[i % 3])
            for i in range(count)
            for port in (health.port, metrics.port)
        ]
        for connection in hostile:
            connection.trickle()
        if holding:  # every hostile connection is held, none pushed out
            wait_until(
                lambda: health.open_connections + metrics.open_connections == 2 * count,
                "all hostile connections held",
                timeout=TIMEOUT / 2,
            )
        probes = [_probe(health.port, "/ready") for _ in range(3)]
        probes += [_probe(metrics.port, "/metrics") for _ in range(3)]
        threads_during = threading.active_count()
        assert [status for status, _ in probes] == [202] * 3 + [200] * 3
        assert max(took for _, took in probes) < PROBE_LIMIT
        assert threads_during <= threads_before, "no thread per connection"

        try:
            _wait_all_closed(hostile, deadline=opened + TIMEOUT + WAIT)
        finally:
            for connection in hostile:
                connection.sock.close()
        if holding:  # held until the deadline, not closed before it
            first_close = min(c.closed_at for c in hostile if c.closed_at is not None)
            assert first_close - opened >= TIMEOUT * 0.9
        wait_until(lambda: health.open_connections == metrics.open_connections == 0, "the server forgot them")
        assert threading.active_count() <= threads_before
