"""Memory housekeeping: malloc_trim and Arrow pool release on a schedule, as a start/stop subsystem."""

from __future__ import annotations

import threading

import prometheus_client
import pytest

from gooddata_flight_server.housekeeping import MemoryHousekeeping, load_malloc_trim
from gooddata_flight_server.observability.metrics import memory_metrics


def test_runs_on_schedule_and_stops() -> None:
    """The trim runs every interval, reports its duration, and its thread ends on stop()."""
    ran = threading.Event()
    durations: list[float] = []

    def done(duration: float) -> None:
        durations.append(duration)
        if len(durations) >= 3:
            ran.set()

    housekeeping = MemoryHousekeeping(0.01, on_done=done)
    housekeeping.start()
    try:
        assert ran.wait(10)
    finally:
        housekeeping.stop()
    assert all(d >= 0 for d in durations)
    assert not [t for t in threading.enumerate() if t.name == "gdfs-housekeeping"]


def test_glibc_malloc_trim_is_found_here() -> None:
    """On glibc (this machine) malloc_trim is loaded and callable."""
    trim = load_malloc_trim()
    if trim is None:
        pytest.skip("no glibc malloc_trim on this platform")
    assert trim(0) in (0, 1)


def test_failures_are_counted_not_raised() -> None:
    """A failing run is reported to on_error and the loop keeps going."""
    errors = threading.Event()
    housekeeping = MemoryHousekeeping(3600, on_error=errors.set)
    housekeeping._malloc_trim = lambda pad: 1 // 0  # type: ignore[assignment,misc]
    housekeeping.run_once()
    assert errors.is_set()
    assert housekeeping.runs == 1


def test_server_metrics_record_housekeeping() -> None:
    """The server connects housekeeping to gdfs_malloc_trim and gdfs_malloc_trim_error."""
    metrics = memory_metrics()
    before = prometheus_client.REGISTRY.get_sample_value("gdfs_malloc_trim_count") or 0.0
    housekeeping = MemoryHousekeeping(
        3600, on_done=metrics.malloc_trim.observe, on_error=metrics.malloc_trim_error.inc
    )
    housekeeping.run_once()
    assert prometheus_client.REGISTRY.get_sample_value("gdfs_malloc_trim_count") == before + 1
