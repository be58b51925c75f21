"""Memory housekeeping: give freed memory back to the operating system on a schedule.

gRPC allocates received Arrow data with malloc, and glibc keeps freed memory in its arenas; on
write-heavy servers RSS then looks like a leak and a container memory limit kills the pod. Calling
``malloc_trim(0)`` periodically returns those pages; Arrow's default pool (jemalloc or mimalloc)
gets the same treatment through ``release_unused()``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable

import pyarrow
import structlog

__all__ = ["MemoryHousekeeping", "load_malloc_trim"]

log = structlog.get_logger(__name__)


def load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class MemoryHousekeeping:
    """Runs the trim every ``interval_sec`` on a thread of its own until stopped.

    ``on_done(duration_sec)`` and ``on_error()`` report each run (the server connects them to the
    ``gdfs_malloc_trim`` summary and ``gdfs_malloc_trim_error`` counter).
    """

    def __init__(
        self,
        interval_sec: float,
        on_done: Callable[[float], None] = lambda duration: None,
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        self._interval = interval_sec
        self._on_done = on_done
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._malloc_trim: Callable[[int], int] | None = None
        self.runs = 0

    def start(self) -> None:
        self._malloc_trim = load_malloc_trim()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gdfs-housekeeping", daemon=True)
        self._thread.start()
        log.debug(
            "housekeeping_started", interval_sec=self._interval, malloc_trim=self._malloc_trim is not None
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def run_once(self) -> None:
        started = time.perf_counter()
        try:
            if self._malloc_trim is not None:
                self._malloc_trim(0)
            pyarrow.default_memory_pool().release_unused()
        except Exception:
            self._on_error()
            log.exception("malloc_trim_failed")
            return
        finally:
            self.runs += 1
        self._on_done(time.perf_counter() - started)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()
