"""LogLimiter: a bounded number of log lines per kind and window, with the count of those left out."""

from __future__ import annotations

import threading

import pytest

from gooddata_flight_server.observability.log_limit import LogLimiter


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_suppressed_then_counted_in_the_next_window() -> None:
    clock = _Clock()
    limiter = LogLimiter(burst=3, interval_sec=10.0, clock=clock)
    assert [limiter.admit("auth") for _ in range(5)] == [0, 0, 0, None, None]
    clock.now += 10.0
    assert limiter.admit("auth") == 2  # the first line of the new window says two were left out
    assert limiter.admit("auth") == 0


def test_kinds_are_limited_separately() -> None:
    limiter = LogLimiter(burst=1, interval_sec=10.0, clock=_Clock())
    assert (limiter.admit("a"), limiter.admit("a"), limiter.admit("b")) == (0, None, 0)


def test_log_adds_the_suppressed_count() -> None:
    clock = _Clock()
    limiter = LogLimiter(burst=1, interval_sec=1.0, clock=clock)
    lines: list[tuple[str, dict[str, object]]] = []

    def sink(event: str, **fields: object) -> None:
        lines.append((event, fields))

    for _ in range(4):
        limiter.log("k", sink, "auth_failed", reason="invalid_token")
    clock.now += 1.0
    limiter.log("k", sink, "auth_failed", reason="invalid_token")
    assert lines == [
        ("auth_failed", {"reason": "invalid_token"}),
        ("auth_failed", {"reason": "invalid_token", "suppressed": 3}),
    ]


def test_concurrent_admissions_never_exceed_the_burst() -> None:
    limiter = LogLimiter(burst=50, interval_sec=3600.0)
    admitted: list[int | None] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(1000):
            result = limiter.admit("k")
            with lock:
                admitted.append(result)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result is not None for result in admitted) == 50


@pytest.mark.parametrize(("burst", "interval"), [(0, 1.0), (1, 0.0)])
def test_bad_limits_are_refused(burst: int, interval: float) -> None:
    with pytest.raises(ValueError):
        LogLimiter(burst=burst, interval_sec=interval)
