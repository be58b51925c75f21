"""Prepared statements: what a service answers ``CreatePreparedStatement`` with, and where the layer
keeps them between calls.

The protocol lets a client create a prepared statement (an action), bind parameters to it (DoPut),
run it any number of times (GetFlightInfo, or DoPut for updates) and close it (an action). The layer
keeps each open statement under a random handle, with the parameters bound last; a service only
says how to run one. Statements live on the replica that created them. A client that never closes
its statements does not exhaust the server: statements unused for ``idle_timeout_sec`` are dropped
(when the next one is created), and at most ``max_statements`` are open at once.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow
import structlog

from gooddata_flight_server.flightsql._errors import bad_request

__all__ = ["PreparedStatement"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PreparedStatement:
    """A statement a service prepared; ``state`` is the service's own (a parsed plan, say).

    The schemas go to the client when the statement is created: ``dataset_schema`` is the schema of
    the result (None when the statement returns no rows or the schema is unknown before it runs),
    ``parameter_schema`` the schema of the parameters it takes (None when it takes none or they are
    unknown).
    """

    query: str
    dataset_schema: pyarrow.Schema | None = None
    parameter_schema: pyarrow.Schema | None = None
    state: Any = None


class _Entry:
    __slots__ = ("last_used", "parameters", "statement")

    def __init__(self, statement: PreparedStatement) -> None:
        self.statement = statement
        self.parameters: pyarrow.Table | None = None
        self.last_used = time.monotonic()


class PreparedStatements:
    """The open prepared statements of one server, by handle; thread-safe."""

    def __init__(self, idle_timeout_sec: float, max_statements: int) -> None:
        self._idle_timeout_sec = idle_timeout_sec
        self._max_statements = max_statements
        self._lock = threading.Lock()
        self._entries: dict[bytes, _Entry] = {}

    @property
    def idle_timeout_sec(self) -> float:
        return self._idle_timeout_sec

    def add(self, statement: PreparedStatement) -> bytes:
        """Keep the statement; its new handle (16 random bytes, as hex)."""
        handle = os.urandom(16).hex().encode()
        now = time.monotonic()
        with self._lock:
            idle = [h for h, e in self._entries.items() if now - e.last_used > self._idle_timeout_sec]
            for stale in idle:
                del self._entries[stale]
            if len(self._entries) >= self._max_statements:
                raise bad_request(
                    f"Too many open prepared statements ({len(self._entries)}); close the ones you no "
                    "longer use."
                )
            self._entries[handle] = _Entry(statement)
        if idle:
            log.info("prepared_statements_expired", count=len(idle))
        return handle

    def _entry(self, handle: bytes) -> _Entry:
        entry = self._entries.get(handle)
        if entry is None:
            raise bad_request(
                f"Unknown prepared statement handle {handle[:64]!r}: it was closed, it expired, or it was "
                "created on another server."
            )
        entry.last_used = time.monotonic()
        return entry

    def get(self, handle: bytes) -> tuple[PreparedStatement, pyarrow.Table | None]:
        """The statement and the parameters bound to it last; BAD_ARGUMENT for an unknown handle."""
        with self._lock:
            entry = self._entry(handle)
            return entry.statement, entry.parameters

    def bind(self, handle: bytes, parameters: pyarrow.Table | None) -> None:
        """Bind parameters for the next runs (None: unbind); BAD_ARGUMENT for an unknown handle."""
        with self._lock:
            self._entry(handle).parameters = parameters

    def remove(self, handle: bytes) -> PreparedStatement | None:
        """Forget the statement; None if the handle was not open (closing twice is harmless)."""
        with self._lock:
            entry = self._entries.pop(handle, None)
        return None if entry is None else entry.statement

    def __len__(self) -> int:
        return len(self._entries)
