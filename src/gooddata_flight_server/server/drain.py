"""The drain: how a server stops taking calls and lets the ones in flight finish, within a deadline.

1. The gate refuses new calls with SHUTTING_DOWN (retryable elsewhere); readiness is off already.
2. Calls in flight get until the deadline to end. Calls still running near it may be waiting for
   tasks (GetFlightInfo waiting for a query, say): the tasks are cancelled a little before the
   deadline (a quarter of the timeout, 5 s at most), so those calls can still answer.
3. If clients were refused meanwhile, the gate keeps refusing a moment longer: once gRPC shuts down
   it cancels what arrives, and CANCELLED is not a status clients retry on.
4. gRPC's listener shuts down (on a thread of its own); past the deadline calls still running are
   abandoned (the listener logs them when it stops).

A forced stop (a second signal, ``abort()``) skips the waiting. ``forced()`` is asked every 0.1 s:
it may be a flag a signal handler flips without notifying anyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gooddata_flight_server.rpc.gate import Gate
from gooddata_flight_server.rpc.listener import FlightListener

__all__ = ["Drain", "DrainResult"]

log = structlog.get_logger(__name__)

_TASK_GRACE_SEC = 5.0  # most of the deadline left to calls whose tasks were cancelled
_LINGER_SEC = 0.2  # how long refusals go on after the drain, while clients still call
_TICK_SEC = 0.1


@dataclass(frozen=True)
class DrainResult:
    idle: bool
    """Every call in flight ended before the deadline."""
    tasks_cancelled: bool
    """Running tasks had to be cancelled to meet the deadline."""


class Drain:
    """One drain of one server: the deadline it keeps, and the steps above."""

    def __init__(
        self,
        gate: Gate,
        listener: FlightListener,
        cancel_tasks: Callable[[], None],
        timeout: float,
        *,
        forced: Callable[[], bool],
        gate_closed: Callable[[], None] = lambda: None,
    ) -> None:
        """``gate_closed`` runs right after the gate closes (the server turns readiness off then:
        whoever sees the server not ready may count on calls being refused)."""
        self._gate = gate
        self._gate_closed = gate_closed
        self._listener = listener
        self._cancel_tasks = cancel_tasks
        self._timeout = timeout
        self._forced = forced
        self._deadline: float | None = None

    def time_left(self) -> float:
        """Seconds left of the deadline, for what stops after the drain; 0 before it or when forced."""
        if self._deadline is None or self._forced():
            return 0.0
        return max(0.0, self._deadline - time.monotonic())

    def run(self) -> DrainResult:
        gate, timeout = self._gate, self._timeout
        log.info("server_draining", forced=self._forced(), in_flight=gate.in_flight, timeout_sec=timeout)
        gate.close()
        self._gate_closed()
        deadline = self._deadline = time.monotonic() + timeout
        idle, cancelled = False, False
        if not self._forced():
            idle = gate.wait_idle(deadline - min(_TASK_GRACE_SEC, timeout / 4), self._forced)
            if not idle and not self._forced():
                log.info("drain_cancelling_tasks", in_flight=gate.in_flight)
                self._cancel_tasks()
                cancelled = True
                idle = gate.wait_idle(deadline, self._forced)
        if idle and gate.refused_while_draining:
            self._sleep_until(min(deadline, time.monotonic() + _LINGER_SEC))
        self._listener.begin_drain()  # with nothing in flight quick; else gRPC waits for stuck calls
        if idle:
            while not self._listener.wait_drained(min(_TICK_SEC, deadline - time.monotonic())):
                if self._forced() or time.monotonic() >= deadline:
                    idle = False  # gRPC still holds a call: not a clean stop
                    break
        elif not self._forced():
            log.warning("drain_deadline_exceeded", timeout_sec=timeout, in_flight=gate.in_flight)
        return DrainResult(idle=idle, tasks_cancelled=cancelled)

    def _sleep_until(self, until: float) -> None:
        while (remaining := until - time.monotonic()) > 0 and not self._forced():
            time.sleep(min(remaining, _TICK_SEC))
