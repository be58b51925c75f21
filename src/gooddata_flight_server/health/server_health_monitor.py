"""Health of the server's modules, as reported by the server and by user code.

The monitor is the ground truth behind the ``/live`` and ``/ready`` endpoints: any module that
reports ``NOT_OK`` makes the whole server not live; readiness follows the server lifecycle.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from types import MappingProxyType

import structlog

__all__ = ["ModuleHealthStatus", "ServerHealthMonitor"]

log = structlog.get_logger(__name__)


class ModuleHealthStatus(enum.Enum):
    OK = "ok"
    NOT_OK = "not_ok"


class ServerHealthMonitor:
    """Thread-safe registry of module statuses plus the server's readiness flag.

    Modules report from any thread (RPC handlers, tasks, housekeeping); readers take a consistent
    snapshot. A status change is logged once, not on every report, so a module can report freely.
    """

    def __init__(self, trim_interval: int | None = None) -> None:
        """``trim_interval`` is accepted for the original package's signature and not used here:
        the server's memory housekeeping (``malloc_trim_interval_sec``) does the trimming."""
        self._lock = threading.Lock()
        self._statuses: dict[str, ModuleHealthStatus] = {}
        self._not_ok = 0
        self._ready = False

    def set_module_status(self, name: str, status: ModuleHealthStatus) -> None:
        if not isinstance(status, ModuleHealthStatus):
            raise TypeError(f"status must be a ModuleHealthStatus, got {status!r}")
        with self._lock:
            previous = self._statuses.get(name)
            if previous is status:
                return
            self._statuses[name] = status
            if previous is ModuleHealthStatus.NOT_OK:
                self._not_ok -= 1
            if status is ModuleHealthStatus.NOT_OK:
                self._not_ok += 1
        log.info(
            "module_status_changed",
            module=name,
            status=status.value,
            previous=getattr(previous, "value", None),
        )

    @property
    def module_statuses(self) -> Mapping[str, ModuleHealthStatus]:
        """A snapshot of every module's last reported status."""
        with self._lock:
            return MappingProxyType(dict(self._statuses))

    def is_alive(self) -> bool:
        """True while no module is NOT_OK."""
        return self._not_ok == 0

    def is_ready(self) -> bool:
        """True while the server is started and serving (not before, and not once shutdown began)."""
        return self._ready

    def set_ready(self, ready: bool) -> None:
        """Flipped by the server lifecycle only."""
        self._ready = ready
