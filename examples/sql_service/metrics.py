"""The service's own Prometheus metrics, served by the server next to its ``gdfs_*`` metrics.

Declared the plain ``prometheus_client`` way, in the process default registry. They are created on
first use rather than at import (importing a module should not register anything) and only once
per process, because tests start many servers in one process.
"""

from __future__ import annotations

import dataclasses
import functools

from prometheus_client import Counter

__all__ = ["ServiceMetrics", "service_metrics"]


@dataclasses.dataclass(frozen=True)
class ServiceMetrics:
    queries: Counter
    """Queries answered by GetFlightInfo, by outcome: ok, bad_argument, cancelled, timeout, failed."""
    rows_loaded: Counter
    """Rows stored by DoPut."""


@functools.cache
def service_metrics() -> ServiceMetrics:
    return ServiceMetrics(
        queries=Counter(
            "sql_service_queries", "SQL queries run through GetFlightInfo, by outcome.", ["outcome"]
        ),
        rows_loaded=Counter("sql_service_rows_loaded", "Rows stored into tables by DoPut."),
    )
