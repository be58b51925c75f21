"""A FIFO of jobs run by a bounded number of threads started on demand.

``concurrent.futures.ThreadPoolExecutor`` would do, except for what the task executor needs from
its pools: the queue depth for the metrics, threads that never keep the interpreter from exiting
(a task that ignores cancellation must not hang the process at exit; ThreadPoolExecutor joins its
threads at exit), and a join with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import structlog

__all__ = ["WorkerPool"]

log = structlog.get_logger(__name__)


class WorkerPool:
    """Runs submitted jobs in submission order on up to ``max_threads`` daemon threads.

    A thread is started only when a job would otherwise wait while the pool is below its size, so
    an idle server does not hold dozens of threads. Jobs must not raise; one that does is logged.
    """

    def __init__(self, name: str, max_threads: int) -> None:
        self._name = name
        self._max_threads = max_threads
        self._cond = threading.Condition(threading.Lock())
        self._jobs: deque[Callable[[], None]] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._stopping = False

    @property
    def depth(self) -> int:
        """Jobs waiting for a thread."""
        return len(self._jobs)

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue a job; False (and the job is not queued) once the pool is stopping."""
        with self._cond:
            if self._stopping:
                return False
            self._jobs.append(job)
            # Idle threads that were notified but have not woken yet still count as idle, so
            # comparing with the queue length never leaves a job waiting for a busy thread.
            if len(self._jobs) > self._idle and len(self._threads) < self._max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._cond.notify()
            return True

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    if self._stopping:
                        return
                    self._idle += 1
                    try:
                        self._cond.wait()
                    finally:
                        self._idle -= 1
                job = self._jobs.popleft()
            try:
                job()
            except Exception:
                log.exception("worker_job_failed", pool=self._name)

    def stop(self) -> None:
        """Refuse new jobs; the threads end once the queued jobs are done."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def join(self, deadline: float) -> bool:
        """Wait for the threads to end until ``deadline`` (``time.monotonic()``); True if all ended."""
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)
