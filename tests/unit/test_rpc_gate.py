"""The availability gate on its own: admission by state, the in-flight count, waiting for idle."""

from __future__ import annotations

import threading
import time

import pyarrow.flight as flight
import pytest

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.rpc.gate import Gate


def _refusal(gate: Gate) -> ErrorInfo:
    with pytest.raises(flight.FlightUnavailableError) as caught:
        gate.admit()
    return ErrorInfo.from_pyarrow_error(caught.value)


def test_not_ready_until_serving_then_shutting_down() -> None:
    """Before serving every call is refused NOT_READY, after it SHUTTING_DOWN; both retryable."""
    gate = Gate()
    assert _refusal(gate).code == ErrorCode.NOT_READY
    gate.open()
    gate.admit()
    assert gate.in_flight == 1
    gate.close()
    info = _refusal(gate)
    assert info.code == ErrorCode.SHUTTING_DOWN
    assert ErrorCode.is_retryable(info.code)
    assert gate.in_flight == 1, "a refusal takes nothing"
    assert gate.refused_while_draining == 1
    gate.leave()
    assert gate.in_flight == 0


def test_wait_idle_returns_once_the_last_call_left() -> None:
    gate = Gate()
    gate.open()
    gate.admit()
    gate.admit()
    leaving = threading.Timer(0.05, lambda: (gate.leave(), gate.leave()))
    leaving.start()
    try:
        assert gate.wait_idle(time.monotonic() + 30)
    finally:
        leaving.cancel()
    assert gate.in_flight == 0


def test_wait_idle_gives_up_at_the_deadline_and_when_interrupted() -> None:
    gate = Gate()
    gate.open()
    gate.admit()
    assert not gate.wait_idle(time.monotonic() + 0.05)
    started = time.monotonic()
    assert not gate.wait_idle(time.monotonic() + 30, interrupted=lambda: True)
    assert time.monotonic() - started < 5, "an interruption ends the wait long before the deadline"
    gate.leave()
    assert gate.wait_idle(time.monotonic())
