"""A FIFO of jobs run by a bounded number of threads started on demand.

``concurrent.futures.ThreadPoolExecutor`` would do, except for what the task executor needs from
its pools: the queue depth for the metrics, threads that never keep the interpreter from exiting
(a task that ignores cancellation must not hang the process at exit; ThreadPoolExecutor joins its
threads at exit), and a join with a deadline.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import structlog

__all__ = ["WorkerPool"]

log = structlog.get_logger(__name__)


class WorkerPool:
    """Runs submitted jobs in submission order on up to ``max_threads`` daemon threads.

    A thread is started only when no thread is idle and the pool is below its size, so an idle
    server does not hold dozens of threads. Jobs wait in a ``queue.SimpleQueue`` (C-level, no
    Python condition variable on the hot path, as in ``ThreadPoolExecutor``). Jobs must not
    raise; one that does is logged.
    """

    def __init__(self, name: str, max_threads: int) -> None:
        self._name = name
        self._max_threads = max_threads
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # released by a thread each time it is about to wait
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    @property
    def depth(self) -> int:
        """Jobs waiting for a thread."""
        return 0 if self._stopping else self._jobs.qsize()

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue a job; False (and the job is not queued) once the pool is stopping."""
        with self._lock:
            if self._stopping:
                return False
            self._jobs.put(job)
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            return True

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:  # stop() queued one of these per thread, behind the real jobs
                return
            try:
                job()
            except Exception:
                log.exception("worker_job_failed", pool=self._name)
            self._idle.release()

    def stop(self) -> None:
        """Refuse new jobs; the threads end once the queued jobs are done."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            threads = len(self._threads)
        for _ in range(threads):
            self._jobs.put(None)

    def join(self, deadline: float | None) -> bool:
        """Wait for the threads to end until ``deadline`` (``time.monotonic()``; None: no deadline);
        True if all ended."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)
