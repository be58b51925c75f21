"""The one place where the server's Prometheus metrics are declared.

Rules this module keeps:

- **Nothing is registered at import.** Each group of metrics is created on first use, once per
  registry (``_globals.metric_group``): ``prometheus_client.REGISTRY`` by default, the one the
  metrics endpoint serves, so users' own metrics appear next to ours; a server may be given a
  registry of its own. A process may create any number of servers and executors (tests do); those
  on one registry share the same metric objects, so nothing is ever registered twice.
- **Derived values are computed at scrape time.** Queue depths are not kept up to date by every
  submit and every start of a task (that would cost a lock and two gauge updates per task and could
  drift); a :class:`prometheus_client.registry.Collector` asks the live executors for their depth
  when Prometheus scrapes. Executors are held weakly, so an executor that was never stopped does not
  stay alive because of its metrics; with several live executors the gauges report the sum.

A group is a frozen dataclass with a ``collectors()`` list, plus an accessor taking the registry
(:func:`task_metrics`, :func:`rpc_metrics` ...).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow
import pyarrow.flight
from prometheus_client import REGISTRY, Counter, Histogram, Summary
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from gooddata_flight_server._globals import metric_group
from gooddata_flight_server.errors.classify import AUTH_FAILURE_REASONS, OUTCOMES

__all__ = [
    "RPC_METHODS",
    "RPC_METHOD_NAMES",
    "RPC_OUTCOMES",
    "AuthMetrics",
    "InFlightSource",
    "MemoryMetrics",
    "QueueDepthSource",
    "RpcMetrics",
    "TaskMetrics",
    "auth_metrics",
    "memory_metrics",
    "rpc_metrics",
    "task_metrics",
]


class QueueDepthSource(Protocol):
    """What the task-state collector asks an executor at scrape time."""

    @property
    def task_queue_depth(self) -> int:
        """Tasks submitted but not yet running."""
        ...

    @property
    def close_queue_depth(self) -> int:
        """Evicted results waiting to be closed."""
        ...

    @property
    def running_count(self) -> int:
        """Tasks running now."""
        ...

    @property
    def stored_results(self) -> tuple[int, int]:
        """Results kept for clients to fetch: (how many, their bytes)."""
        ...

    @property
    def result_limits(self) -> tuple[int, int]:
        """The stored-result budget: (most results, most bytes); 0 means unbounded."""
        ...


TASK_REJECT_REASONS = ("queue_full", "results_full", "shutting_down")
"""Why a task submission may be refused (the ``reason`` label of ``gdfs_task_rejected_total``)."""


class _TaskStateCollector(Collector):
    """Queue depths, running tasks and stored results, summed over the live executors at scrape time."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._lock = threading.Lock()
        self._sources: weakref.WeakSet[QueueDepthSource] = weakref.WeakSet()

    def track(self, source: QueueDepthSource) -> None:
        with self._lock:
            self._sources.add(source)

    def untrack(self, source: QueueDepthSource) -> None:
        with self._lock:
            self._sources.discard(source)

    def _families(self, values: tuple[float, ...]) -> list[GaugeMetricFamily]:
        p = self._prefix
        docs = (
            (f"{p}_task_queue", "Tasks submitted to the task executor and not yet running."),
            (f"{p}_close_queue", "Evicted task results waiting to be closed."),
            (f"{p}_task_running", "Tasks running now."),
            (f"{p}_task_results_stored", "Finished task results kept for clients to fetch."),
            (f"{p}_task_results_bytes", "Bytes of Arrow data held by the stored task results."),
            (f"{p}_task_results_max_count", "Most task results that may be stored (0: unbounded)."),
            (f"{p}_task_results_max_bytes", "Most bytes the stored task results may hold (0: unbounded)."),
        )
        return [GaugeMetricFamily(name, doc, value) for (name, doc), value in zip(docs, values, strict=True)]

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Registration calls describe() so that it does not call collect() on arbitrary threads.
        return self._families((0,) * 7)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:  # a WeakSet must not change while it is iterated
            sources = list(self._sources)
        values = [0] * 7
        for s in sources:
            stored, limits = s.stored_results, s.result_limits
            row = (s.task_queue_depth, s.close_queue_depth, s.running_count, *stored, *limits)
            values = [a + b for a, b in zip(values, row, strict=True)]
        return self._families(tuple(values))


@dataclass(frozen=True)
class TaskMetrics:
    """Metrics of the task executors (SPEC §8). Durations are in seconds."""

    wait: Summary
    duration: Summary
    e2e_duration: Summary
    error: Counter
    cancelled: Counter
    completed: Counter
    rejected: Mapping[str, Any]
    queues: _TaskStateCollector
    _rejected: Counter

    def collectors(self) -> Iterable[Collector]:
        return (
            self.wait,
            self.duration,
            self.e2e_duration,
            self.error,
            self.cancelled,
            self.completed,
            self._rejected,
            self.queues,
        )

    @staticmethod
    def _create(prefix: str, registry: CollectorRegistry) -> TaskMetrics:
        queues = _TaskStateCollector(prefix)
        registry.register(queues)
        rejected = Counter(
            f"{prefix}_task_rejected",
            "Task submissions refused, by reason (BACKPRESSURE, SHUTTING_DOWN).",
            ["reason"],
            registry=registry,
        )
        return TaskMetrics(
            wait=Summary(
                f"{prefix}_task_wait",
                "Time a task waited in the queue before it started to run.",
                registry=registry,
            ),
            duration=Summary(f"{prefix}_task_duration", "Time a task ran.", registry=registry),
            e2e_duration=Summary(
                f"{prefix}_task_e2e_duration",
                "Time from the submission of a task until it finished.",
                registry=registry,
            ),
            error=Counter(
                f"{prefix}_task_error", "Tasks that failed through no fault of the client.", registry=registry
            ),
            cancelled=Counter(
                f"{prefix}_task_cancelled", "Tasks that were cancelled, queued or running.", registry=registry
            ),
            completed=Counter(
                f"{prefix}_task_completed",
                "Tasks that finished: with a result, an error or cancelled.",
                registry=registry,
            ),
            rejected={reason: rejected.labels(reason) for reason in TASK_REJECT_REASONS},
            queues=queues,
            _rejected=rejected,
        )


def task_metrics(prefix: str = "gdfs", registry: CollectorRegistry | None = None) -> TaskMetrics:
    """The task metrics named ``<prefix>_*`` of a registry (the default one unless given)."""
    target = REGISTRY if registry is None else registry
    return metric_group(f"tasks:{prefix}", target, lambda r: TaskMetrics._create(prefix, r))


RPC_METHOD_NAMES: Mapping[Any, str] = {
    pyarrow.flight.FlightMethod.HANDSHAKE: "Handshake",
    pyarrow.flight.FlightMethod.LIST_FLIGHTS: "ListFlights",
    pyarrow.flight.FlightMethod.GET_FLIGHT_INFO: "GetFlightInfo",
    pyarrow.flight.FlightMethod.GET_SCHEMA: "GetSchema",
    pyarrow.flight.FlightMethod.DO_GET: "DoGet",
    pyarrow.flight.FlightMethod.DO_PUT: "DoPut",
    pyarrow.flight.FlightMethod.DO_ACTION: "DoAction",
    pyarrow.flight.FlightMethod.LIST_ACTIONS: "ListActions",
    pyarrow.flight.FlightMethod.DO_EXCHANGE: "DoExchange",
}
"""Flight method names as the Flight protocol spells them (span names, metric labels)."""
RPC_METHODS = tuple(RPC_METHOD_NAMES.values())
RPC_OUTCOMES = OUTCOMES

# seconds; small calls on loopback take ~0.1-1 ms, task round trips and big streams much longer
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class InFlightSource(Protocol):
    """What the state collector asks a server at scrape time."""

    @property
    def in_flight(self) -> int:
        """Calls admitted and not yet ended."""
        ...


class HttpEndpointSource(Protocol):
    """What the state collector asks an HTTP endpoint (health checks, metrics) at scrape time."""

    @property
    def name(self) -> str: ...

    @property
    def open_connections(self) -> int: ...


class _RpcStateCollector(Collector):
    """``gdfs_rpc_in_flight`` (summed over live servers), the open connections of the HTTP endpoints
    and Arrow's default memory pool, at scrape time. Sources are held weakly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: weakref.WeakSet[InFlightSource] = weakref.WeakSet()
        self._endpoints: weakref.WeakSet[HttpEndpointSource] = weakref.WeakSet()

    def track(self, source: InFlightSource) -> None:
        with self._lock:
            self._sources.add(source)

    def untrack(self, source: InFlightSource) -> None:
        with self._lock:
            self._sources.discard(source)

    def track_endpoint(self, endpoint: HttpEndpointSource) -> None:
        with self._lock:
            self._endpoints.add(endpoint)

    def untrack_endpoint(self, endpoint: HttpEndpointSource) -> None:
        with self._lock:
            self._endpoints.discard(endpoint)

    @staticmethod
    def _families(
        in_flight: float, allocated: float, peak: float, connections: Mapping[str, int]
    ) -> list[GaugeMetricFamily]:
        http = GaugeMetricFamily(
            "gdfs_http_open_connections",
            "Connections open to the server's HTTP endpoints (health checks, metrics), by endpoint.",
            labels=["endpoint"],
        )
        for endpoint, count in sorted(connections.items()):
            http.add_metric([endpoint], count)
        return [
            GaugeMetricFamily("gdfs_rpc_in_flight", "Flight RPC calls started and not yet ended.", in_flight),
            GaugeMetricFamily(
                "gdfs_arrow_pool_allocated_bytes",
                "Bytes allocated in Arrow's default memory pool.",
                allocated,
            ),
            GaugeMetricFamily(
                "gdfs_arrow_pool_peak_bytes", "Peak bytes allocated in Arrow's default memory pool.", peak
            ),
            http,
        ]

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families(0, 0, 0, {})

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            sources = list(self._sources)
            endpoints = list(self._endpoints)
        connections: dict[str, int] = {}
        for endpoint in endpoints:
            connections[endpoint.name] = connections.get(endpoint.name, 0) + endpoint.open_connections
        pool = pyarrow.default_memory_pool()
        return self._families(
            sum(s.in_flight for s in sources), pool.bytes_allocated(), pool.max_memory() or 0, connections
        )


@dataclass(frozen=True)
class RpcMetrics:
    """Per-call metrics, recorded once per call when it ends (see ``rpc.edge``).

    Label children are resolved once here, so recording a call is a dict lookup and an increment,
    not a label lookup under prometheus_client's lock.
    """

    requests: Mapping[tuple[str, str], Any]
    latency: Mapping[str, Any]
    sent_bytes: Mapping[str, Any]
    sent_rows: Mapping[str, Any]
    received_bytes: Mapping[str, Any]
    received_rows: Mapping[str, Any]
    received_batches: Mapping[str, Any]
    state: _RpcStateCollector
    _metrics: tuple[Collector, ...]

    def collectors(self) -> Iterable[Collector]:
        return (*self._metrics, self.state)

    @staticmethod
    def _create(registry: CollectorRegistry) -> RpcMetrics:
        requests = Counter(
            "gdfs_rpc_requests",
            "Flight RPC calls by method and outcome.",
            ["method", "outcome"],
            registry=registry,
        )
        latency = Histogram(
            "gdfs_rpc_duration_seconds",
            "Flight RPC call duration by method, from the call's start to its end (streams included).",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        sent_bytes = Counter(
            "gdfs_rpc_sent_bytes", "Arrow data bytes sent to clients.", ["method"], registry=registry
        )
        sent_rows = Counter(
            "gdfs_rpc_sent_rows", "Arrow rows sent to clients.", ["method"], registry=registry
        )
        received_bytes = Counter(
            "gdfs_rpc_received_bytes",
            "Arrow data bytes read from clients: what the server reads itself (Flight SQL uploads) and "
            "what services report with call_info.count_received().",
            ["method"],
            registry=registry,
        )
        received_rows = Counter(
            "gdfs_rpc_received_rows",
            "Arrow rows read from clients: what the server reads itself (Flight SQL uploads) and "
            "what services report with call_info.count_received().",
            ["method"],
            registry=registry,
        )
        received_batches = Counter(
            "gdfs_rpc_received_batches",
            "Arrow record batches read from clients by DoPut and DoExchange (the reader's own count).",
            ["method"],
            registry=registry,
        )
        state = _RpcStateCollector()
        registry.register(state)
        uploads = ("DoPut", "DoExchange")
        return RpcMetrics(
            requests={(m, o): requests.labels(m, o) for m in RPC_METHODS for o in RPC_OUTCOMES},
            latency={m: latency.labels(m) for m in RPC_METHODS},
            sent_bytes={"DoGet": sent_bytes.labels("DoGet")},
            sent_rows={"DoGet": sent_rows.labels("DoGet")},
            received_bytes={m: received_bytes.labels(m) for m in uploads},
            received_rows={m: received_rows.labels(m) for m in uploads},
            received_batches={m: received_batches.labels(m) for m in uploads},
            state=state,
            _metrics=(
                requests,
                latency,
                sent_bytes,
                sent_rows,
                received_bytes,
                received_rows,
                received_batches,
            ),
        )


def rpc_metrics(registry: CollectorRegistry | None = None) -> RpcMetrics:
    """The RPC metrics of a registry (the default one unless given)."""
    return metric_group("rpc", REGISTRY if registry is None else registry, RpcMetrics._create)


@dataclass(frozen=True)
class AuthMetrics:
    failures: Mapping[str, Any]  # the counter child of each reason
    _counter: Counter

    def collectors(self) -> Iterable[Collector]:
        return (self._counter,)

    @staticmethod
    def _create(registry: CollectorRegistry) -> AuthMetrics:
        counter = Counter(
            "gdfs_auth_failures",
            "Calls rejected by token authentication, by reason.",
            ["reason"],
            registry=registry,
        )
        return AuthMetrics(
            failures={reason: counter.labels(reason) for reason in AUTH_FAILURE_REASONS}, _counter=counter
        )


def auth_metrics(registry: CollectorRegistry | None = None) -> AuthMetrics:
    return metric_group("auth", REGISTRY if registry is None else registry, AuthMetrics._create)


@dataclass(frozen=True)
class MemoryMetrics:
    malloc_trim: Summary
    malloc_trim_error: Counter

    def collectors(self) -> Iterable[Collector]:
        return (self.malloc_trim, self.malloc_trim_error)

    @staticmethod
    def _create(registry: CollectorRegistry) -> MemoryMetrics:
        return MemoryMetrics(
            malloc_trim=Summary(
                "gdfs_malloc_trim",
                "Duration of memory housekeeping runs (malloc_trim + pool release).",
                registry=registry,
            ),
            malloc_trim_error=Counter(
                "gdfs_malloc_trim_error", "Memory housekeeping runs that failed.", registry=registry
            ),
        )


def memory_metrics(registry: CollectorRegistry | None = None) -> MemoryMetrics:
    return metric_group("memory", REGISTRY if registry is None else registry, MemoryMetrics._create)
