"""The one place where the server's Prometheus metrics are declared.

Rules this module keeps:

- **Nothing is registered at import.** Each group of metrics is created on first use, once per
  process, in the default registry ``prometheus_client.REGISTRY`` (the one the metrics endpoint
  serves, so users' own metrics appear next to ours). A process may create any number of servers
  and executors (tests do); they all share the same metric objects, so nothing is ever registered
  twice.
- **Derived values are computed at scrape time.** Queue depths are not kept up to date by every
  submit and every start of a task (that would cost a lock and two gauge updates per task and could
  drift); a :class:`prometheus_client.registry.Collector` asks the live executors for their depth
  when Prometheus scrapes. Executors are held weakly, so an executor that was never stopped does not
  stay alive because of its metrics; with several live executors the gauges report the sum.

A group is a frozen dataclass plus an accessor (:func:`task_metrics`); RPC metrics will be added as
another group next to it, created the same way through :func:`_once`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from prometheus_client import REGISTRY, Counter, Summary
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["QueueDepthSource", "TaskMetrics", "task_metrics"]

_T = TypeVar("_T")

_lock = threading.Lock()
_groups: dict[str, object] = {}


def _once(name: str, create: Callable[[], _T]) -> _T:
    """Create a metric group on first use and return the same object ever after.

    The fast path is one dict lookup without the lock: a group is stored only once fully created.
    """
    group = _groups.get(name)
    if group is None:
        with _lock:
            group = _groups.get(name)
            if group is None:
                group = create()
                _groups[name] = group
    return group  # type: ignore[return-value]  # the dict is keyed by group name; one type per name


class QueueDepthSource(Protocol):
    """What the queue-depth collector asks an executor at scrape time."""

    @property
    def task_queue_depth(self) -> int:
        """Tasks submitted but not yet running."""
        ...

    @property
    def close_queue_depth(self) -> int:
        """Evicted results waiting to be closed."""
        ...


class _QueueDepthCollector(Collector):
    """Reports ``gdfs_task_queue`` and ``gdfs_close_queue`` summed over the live executors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: weakref.WeakSet[QueueDepthSource] = weakref.WeakSet()

    def track(self, source: QueueDepthSource) -> None:
        with self._lock:
            self._sources.add(source)

    def untrack(self, source: QueueDepthSource) -> None:
        with self._lock:
            self._sources.discard(source)

    @staticmethod
    def _families(task_queue: float, close_queue: float) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "gdfs_task_queue", "Tasks submitted to the task executor and not yet running.", task_queue
            ),
            GaugeMetricFamily("gdfs_close_queue", "Evicted task results waiting to be closed.", close_queue),
        ]

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Registration calls describe() so that it does not call collect() on arbitrary threads.
        return self._families(0, 0)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:  # a WeakSet must not change while it is iterated
            sources = list(self._sources)
        return self._families(
            sum(s.task_queue_depth for s in sources), sum(s.close_queue_depth for s in sources)
        )


@dataclass(frozen=True)
class TaskMetrics:
    """Metrics of the task executors (SPEC §8). Durations are in seconds."""

    wait: Summary
    duration: Summary
    e2e_duration: Summary
    error: Counter
    cancelled: Counter
    completed: Counter
    queues: _QueueDepthCollector

    @staticmethod
    def _create() -> TaskMetrics:
        queues = _QueueDepthCollector()
        REGISTRY.register(queues)
        return TaskMetrics(
            wait=Summary("gdfs_task_wait", "Time a task waited in the queue before it started to run."),
            duration=Summary("gdfs_task_duration", "Time a task ran."),
            e2e_duration=Summary(
                "gdfs_task_e2e_duration", "Time from the submission of a task until it finished."
            ),
            error=Counter("gdfs_task_error", "Tasks that finished with an error."),
            cancelled=Counter("gdfs_task_cancelled", "Tasks that were cancelled, queued or running."),
            completed=Counter("gdfs_task_completed", "Tasks that finished with a result."),
            queues=queues,
        )


def task_metrics() -> TaskMetrics:
    """The process-wide task metrics, registered in ``prometheus_client.REGISTRY`` on first call."""
    return _once("tasks", TaskMetrics._create)
