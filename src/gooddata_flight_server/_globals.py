"""The process-wide state of the package, all of it, with a reset for tests (as structlog's ``_config``).

Two things cannot be owned by one server, because many servers may live in one process (tests do,
services embedding a server may):

- Prometheus metrics: a registry refuses a second metric of the same name. Each group of metrics
  is created once per registry (``prometheus_client.REGISTRY`` unless a server is given another)
  and shared by every server and executor using that registry.
- OpenTelemetry's global tracer provider can be set once per process. The first server with an
  exporter installs a switch as the global provider (``observability.tracing``), which forwards to
  the provider of the server running now, so ``trace.ProxyTracer`` in user code keeps working
  across servers.

Nothing here does anything at import.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["MetricGroup", "metric_group", "reset", "tracer_switch"]


class MetricGroup(Protocol):
    def collectors(self) -> Iterable[Collector]:
        """What the group registered, so that :func:`reset` can unregister it."""
        ...


_G = TypeVar("_G", bound=MetricGroup)

_lock = threading.Lock()
_groups: dict[tuple[str, int], tuple[CollectorRegistry, Any]] = {}
tracer_switch: Any = None
"""The global tracer provider switch, once a server installed it (see ``observability.tracing``)."""


def metric_group(name: str, registry: CollectorRegistry, create: Callable[[CollectorRegistry], _G]) -> _G:
    """The group ``name`` of ``registry``, created (and registered there) on first use.

    The fast path is one dict lookup without the lock: a group is stored only once fully created.
    """
    key = (name, id(registry))
    found = _groups.get(key)
    if found is None:
        with _lock:
            found = _groups.get(key)
            if found is None:
                found = (registry, create(registry))  # the registry is kept, so its id stays its own
                _groups[key] = found
    group: _G = found[1]
    return group


def reset() -> None:
    """Forget every metric group (unregistering it from its registry) and every running tracer
    provider of the switch; for tests that need a process as fresh as can be."""
    with _lock:
        groups = list(_groups.values())
        _groups.clear()
    for registry, group in groups:
        for collector in group.collectors():
            with contextlib.suppress(KeyError):  # unregistered by someone else already
                registry.unregister(collector)
    if tracer_switch is not None:
        tracer_switch.clear()
