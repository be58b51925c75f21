"""What the server hands a data service's factory at startup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow.flight

from gooddata_flight_server.health import ServerHealthMonitor
from gooddata_flight_server.settings import ServerConfig
from gooddata_flight_server.tasks import TaskExecutor

__all__ = ["ServerContext"]


@dataclass(frozen=True)
class ServerContext:
    """Everything a data service needs from the server, fixed for the server's lifetime.

    ``settings`` is the Dynaconf object holding every loaded setting, so a service reads its own
    section with ``ctx.settings.get("my_service.opt1")``; ``location`` is the advertised location to
    put into FlightInfo endpoints (it carries the real port when ``listen_port`` is 0).
    """

    settings: Any
    config: ServerConfig
    location: pyarrow.flight.Location
    health: ServerHealthMonitor
    task_executor: TaskExecutor
