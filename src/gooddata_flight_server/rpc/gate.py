"""The availability gate: whether calls are let in, and how many are in flight.

Until the methods factory has run, every call is refused with a retryable UNAVAILABLE (NOT_READY);
once a drain begins, with UNAVAILABLE (SHUTTING_DOWN). The edge middleware asks :meth:`Gate.admit`
at the start of every call and :meth:`Gate.leave` at its end, so a drain knows when the last call
that got in has ended (gRPC's own shutdown would refuse new calls without an ErrorInfo, and cancel
those it cuts off).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

import pyarrow.flight

from gooddata_flight_server.errors import ErrorCode, ErrorInfo

__all__ = ["Availability", "Gate"]

_NOT_READY = "The server is starting up and not ready to serve yet; retry shortly."
_SHUTTING_DOWN = "The server is shutting down; retry on another server."


class Availability(enum.Enum):
    NOT_READY = "not_ready"
    SERVING = "serving"
    SHUTTING_DOWN = "shutting_down"


class Gate:
    """Thread-safe: calls enter and leave on gRPC's threads, the server flips the state."""

    def __init__(self) -> None:
        self.state = Availability.NOT_READY
        self._idle = threading.Condition(threading.Lock())
        self._in_flight = 0
        self.refused_while_draining = 0  # approximate (unlocked): only "any or none" matters

    @property
    def in_flight(self) -> int:
        """Calls admitted and not yet ended."""
        return self._in_flight

    def admit(self) -> None:
        """Let a call in (it must :meth:`leave` when it ends), or raise the retryable refusal.

        The state is read under the lock :meth:`close` takes, so no call gets in once a drain has
        seen the server idle."""
        with self._idle:
            state = self.state
            if state is Availability.SERVING:
                self._in_flight += 1
                return
        raise self._refusal(state)

    def open(self) -> None:
        with self._idle:
            self.state = Availability.SERVING

    def close(self) -> None:
        """Refuse every call from now on with SHUTTING_DOWN."""
        with self._idle:
            self.state = Availability.SHUTTING_DOWN

    def leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    def _refusal(self, state: Availability) -> pyarrow.flight.FlightUnavailableError:
        if state is Availability.NOT_READY:
            return ErrorInfo.for_reason(ErrorCode.NOT_READY, _NOT_READY).to_unavailable_error()
        self.refused_while_draining += 1
        return ErrorInfo.for_reason(ErrorCode.SHUTTING_DOWN, _SHUTTING_DOWN).to_unavailable_error()

    def wait_idle(self, deadline: float, interrupted: Callable[[], bool] = lambda: False) -> bool:
        """Wait until no call is in flight, up to ``deadline`` (``time.monotonic()``); True if idle.

        Returns early (False, unless idle) once ``interrupted()`` says so; it is asked every 0.1 s,
        as it may be a flag a signal handler flips without notifying anyone.
        """
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or interrupted():
                    return False
                self._idle.wait(min(remaining, 0.1))
            return True
