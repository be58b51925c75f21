"""The server's task executor: tasks run on a pool of threads; outcomes are kept, then evicted.

Between GetFlightInfo and DoGet the executor keeps a task's outcome for ``task_result_ttl_sec``,
then evicts it and closes its result on separate threads. Stored results are bounded by a budget
(``task_result_max_count``, ``task_result_max_bytes``): while it is used up, new tasks are refused
with a retryable BACKPRESSURE error.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import pyarrow.flight
import structlog
from prometheus_client.registry import CollectorRegistry

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.observability.log_limit import LogLimiter
from gooddata_flight_server.observability.metrics import TaskMetrics, task_metrics
from gooddata_flight_server.tasks._outcome import (
    cancelled_outcome,
    close_quietly,
    execute_task,
    internal_failure,
)
from gooddata_flight_server.tasks._pool import WorkerPool
from gooddata_flight_server.tasks.task import Task
from gooddata_flight_server.tasks.task_executor import (
    TaskExecutor,
    TaskExecutorConfig,
    TaskExecutorSettings,
    TaskWaitTimeoutError,
)
from gooddata_flight_server.tasks.task_result import (
    FlightDataTaskResult,
    ListFlightsTaskResult,
    TaskExecutionResult,
)

__all__ = ["ThreadTaskExecutor"]

log = structlog.get_logger(__name__)
# structlog renders through stdlib logging (observability/logging.py), so this stdlib level check
# makes the same decision as structlog's filter_by_level, for a fraction of the cost of a call
# through the lazy logger proxy: it keeps the per-task debug events off the hot path.
_debug_enabled = functools.partial(logging.getLogger(__name__).isEnabledFor, logging.DEBUG)


class _State(enum.Enum):
    QUEUED = 1
    RUNNING = 2
    FINISHED = 3


class _Entry:
    """Everything the executor knows about one task; the ``done`` event makes waiting race-free
    because a waiter holds the entry itself, not a dict lookup that eviction could undo."""

    __slots__ = (
        "context",
        "done",
        "expires",
        "outcome",
        "state",
        "stored_bytes",
        "submitted_mono",
        "submitted_perf",
        "task",
    )

    def __init__(self, task: Task, context: contextvars.Context) -> None:
        self.task = task
        self.context = context
        self.stored_bytes: int | None = None  # counted in the stored-result budget while not None
        self.submitted_perf = time.perf_counter()
        self.submitted_mono = time.monotonic()
        self.state = _State.QUEUED
        self.outcome: TaskExecutionResult | None = None
        self.expires = 0.0  # time.monotonic() of the outcome's eviction, once finished
        self.done = threading.Event()


def _result_size(task_id: str, result: object) -> int:
    if not isinstance(result, FlightDataTaskResult):
        return 0
    try:
        return max(0, int(result.nbytes))
    except Exception:
        log.exception("task_result_size_failed", task_id=task_id)
        return 0


class _Lifecycle(enum.Enum):
    NEW = 1
    STARTED = 2
    STOPPED = 3


class ThreadTaskExecutor(TaskExecutor):
    """The server's executor: ``task_threads`` workers take tasks in FIFO order.

    A lifecycle subsystem: the server calls :meth:`start`, then :meth:`stop` at shutdown.
    ``stop_wait()`` tells how many seconds of the server's drain deadline remain; ``stop`` gives
    running tasks that long to react to cancellation.

    Costs per call do not grow with the number of stored outcomes: lookups are dict lookups and
    outcomes expire from a deque ordered by expiry (the TTL is the same for all, so appending at
    finish keeps it ordered), watched by one reaper thread that sleeps until the next expiry. A
    renewed outcome (RenewFlightEndpoint) moves, when its first expiry comes, to a heap ordered by
    its new one: each outcome has one pending expiry at a time, in the deque or in the heap.
    """

    def __init__(
        self,
        metric_prefix: str = "gdfs",
        task_threads: int = 4,
        result_close_threads: int = 2,
        keep_results_for: float = 15,
        *,
        config: TaskExecutorConfig | None = None,
        stop_wait: Callable[[], float] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """The server builds it with ``config`` (its ServerConfig) and ``stop_wait``; the positional
        arguments are the original package's, for executors built outside a server, which start on
        their first ``submit``. ``metric_prefix`` names the metrics (``<prefix>_task_queue`` ...),
        registered in ``registry`` (prometheus_client's default registry unless given)."""
        if config is None:
            config = TaskExecutorSettings(
                task_threads=task_threads,
                task_close_threads=result_close_threads,
                task_result_ttl_sec=keep_results_for,
            )
        self._config = config
        self._metric_prefix = metric_prefix
        self._registry = registry
        self._stop_wait = stop_wait
        self._lock = threading.Lock()
        self._expiry_cond = threading.Condition(self._lock)
        self._tasks: dict[str, _Entry] = {}
        self._expiry: deque[tuple[float, _Entry]] = deque()
        self._renewed: list[tuple[float, int, _Entry]] = []  # heap: expiry, tie-breaker, entry
        self._renewals = 0
        self._queued = 0
        self._running = 0
        self._stored_count = 0
        self._stored_bytes = 0
        self._lifecycle = _Lifecycle.NEW
        self._metrics: TaskMetrics | None = None
        self._workers = WorkerPool("gdfs-task", config.task_threads)
        self._closers = WorkerPool("gdfs-task-close", config.task_close_threads)
        self._reaper: threading.Thread | None = None
        self._log_limit = LogLimiter()  # failing tasks and refused submissions: bounded log lines

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._lifecycle is not _Lifecycle.NEW:
                raise RuntimeError("a task executor can be started only once")
            self._start_locked()

    def _start_once(self) -> None:
        with self._lock:
            if self._lifecycle is _Lifecycle.NEW:
                self._start_locked()

    def _start_locked(self) -> None:
        config = self._config
        if config.task_threads < 1 or config.task_close_threads < 1:
            raise ValueError("task_threads and task_close_threads must be at least 1")
        if config.task_result_ttl_sec < 0 or config.task_queue_size < 0:
            raise ValueError("task_result_ttl_sec and task_queue_size must not be negative")
        self._metrics = task_metrics(self._metric_prefix, self._registry)
        self._metrics.queues.track(self)
        self._reaper = threading.Thread(target=self._reap, name="gdfs-task-reaper", daemon=True)
        self._reaper.start()
        self._lifecycle = _Lifecycle.STARTED
        log.debug("task_executor_started", task_threads=config.task_threads)

    def stop(self, cancel_running: bool = True, timeout: float | None = None) -> None:
        """Cancel queued tasks, ask running ones to cancel (unless ``cancel_running`` is False) and
        wait for them within ``timeout`` seconds (default: what ``stop_wait()`` says is left of the
        server's drain deadline; without either, until they end), then close every stored result.
        Idempotent; never raises for a slow task: a task still running at the deadline is reported
        cancelled and its result closed when it ends."""
        with self._lock:
            if self._lifecycle is not _Lifecycle.STARTED:
                self._lifecycle = _Lifecycle.STOPPED
                return
            self._lifecycle = _Lifecycle.STOPPED
            queued = [e for e in self._tasks.values() if e.state is _State.QUEUED]
            running = [e for e in self._tasks.values() if e.state is _State.RUNNING]
            for entry in queued:
                self._finish_locked(entry, cancelled_outcome(entry.task))
            self._queued = 0
            self._expiry_cond.notify_all()  # the reaper ends
        if timeout is None and self._stop_wait is not None:
            timeout = self._stop_wait()
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        for entry in queued:
            entry.task.cancel()  # the hook may release what the task holds; it never runs anyway
            entry.done.set()
        self._count_cancelled(len(queued))
        if cancel_running:
            for entry in running:
                entry.task.cancel()
        self._workers.stop()
        all_ended = self._workers.join(deadline)
        with self._lock:
            # Whatever still runs is reported cancelled now so that no waiter hangs past shutdown;
            # _run closes the result such a task produces later.
            late = [e for e in self._tasks.values() if e.state is _State.RUNNING]
            for entry in late:
                self._finish_locked(entry, cancelled_outcome(entry.task))
            finished = list(self._tasks.values())
            self._tasks.clear()
            self._expiry.clear()
            self._renewed.clear()
        for entry in late:
            entry.done.set()
        self._count_cancelled(len(late))
        for entry in finished:
            self._close_outcome(entry)
        self._closers.stop()
        closed = self._closers.join(deadline)
        if self._reaper is not None:
            self._reaper.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._metrics is not None:
            self._metrics.queues.untrack(self)
        log.info(
            "task_executor_stopped",
            cancelled_queued=len(queued),
            cancelled_running=len(running),
            still_running=len(late),
            results_closed=closed,
            workers_ended=all_ended,
        )

    # -- the interface ------------------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        entry = _Entry(task, contextvars.copy_context())
        task_id = task.task_id
        if self._lifecycle is _Lifecycle.NEW and self._stop_wait is None:
            self._start_once()  # built the original package's way: usable right after construction
        with self._lock:
            if self._lifecycle is _Lifecycle.NEW:
                raise RuntimeError("the task executor is not started")
            if task_id in self._tasks:
                raise ValueError(f"a task with id {task_id!r} was submitted already")
            refusal = self._refusal_locked()
            if refusal is None:
                self._tasks[task_id] = entry
                self._queued += 1
                self._workers.submit(lambda: self._run(entry))
            state = (self._queued, self._running, self._stored_count, self._stored_bytes)
        if refusal is not None:
            raise self._refuse(refusal, *state)
        if _debug_enabled():
            log.debug("task_submitted", task_id=task_id)

    def _refusal_locked(self) -> str | None:
        """Why a task must be refused now, if it must: the server stops, the queue or the result
        budget is full.

        Nothing accepted is ever dropped to make room: stored results stay until read, cancelled or
        expired, and the client retries (on this replica or another) once there is room again.
        """
        if self._lifecycle is not _Lifecycle.STARTED:
            return "shutting_down"
        config = self._config
        limit = config.task_queue_size
        # Queued plus running tasks bound the queue exactly, even while a freed worker has
        # not yet picked up the next task.
        if limit > 0 and self._queued + self._running >= config.task_threads + limit:
            return "queue_full"
        max_count, max_bytes = config.task_result_max_count, config.task_result_max_bytes
        if (max_count > 0 and self._stored_count >= max_count) or (
            max_bytes > 0 and self._stored_bytes >= max_bytes
        ):
            return "results_full"
        return None

    def _refuse(
        self, reason: str, queued: int, running: int, stored: int, stored_bytes: int
    ) -> pyarrow.flight.FlightUnavailableError:
        """Count and log (within the rate limit) a refused task; the retryable error to raise."""
        if self._metrics is not None:
            self._metrics.rejected[reason].inc()
        self._log_limit.log(
            ("task_rejected", reason),
            log.warning,
            "task_rejected",
            reason=reason,
            queued=queued,
            running=running,
            stored_results=stored,
            stored_bytes=stored_bytes,
        )
        if reason == "shutting_down":
            info = ErrorInfo.for_reason(
                ErrorCode.SHUTTING_DOWN, "The server is shutting down and accepts no new tasks."
            )
        elif reason == "queue_full":
            info = ErrorInfo.for_reason(
                ErrorCode.BACKPRESSURE,
                f"The server is busy: {queued} tasks wait to run already. Retry later.",
            )
        else:
            info = ErrorInfo.for_reason(
                ErrorCode.BACKPRESSURE,
                f"The server holds as many results as it may ({stored} results, {stored_bytes} bytes) "
                "until clients fetch them or they expire. Retry later.",
            )
        return info.to_unavailable_error()

    def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskExecutionResult | None:
        entry = self._tasks.get(task_id)
        if entry is None:
            return None
        if not entry.done.wait(timeout):
            raise TaskWaitTimeoutError(task_id, entry.task.cmd)
        return entry.outcome

    def cancel(self, task_id: str) -> bool:
        entry = self._tasks.get(task_id)
        if entry is None:
            return True
        with self._lock:
            dequeued = entry.state is _State.QUEUED
            if dequeued:
                # it never ran: cancelling always works, cancellable or not (as in the original);
                # the worker that takes the job from the pool will skip it
                self._queued -= 1
                self._finish_locked(entry, cancelled_outcome(entry.task))
        if dequeued:
            entry.task.cancel()  # user code (on_task_cancel), outside the lock; the task never runs
            entry.done.set()
            self._count_cancelled(1)
            log.debug("task_cancelled", task_id=task_id, was="queued")
            return True
        if entry.state is _State.FINISHED:
            self._drop_unless_cancelled(entry)
            return True
        # running: cancellation is cooperative, and refused by a task that is not cancellable
        if not entry.task.cancel():
            return False
        if self._finished(entry):  # it finished in between, with its result: drop the result
            self._drop_unless_cancelled(entry)
        return True

    def _drop_unless_cancelled(self, entry: _Entry) -> None:
        """Drop a finished task's result. A cancelled outcome stays until it expires (it holds no
        data): whoever waits for the task, or fetches it, learns it was cancelled (COMMAND_CANCELLED)
        and not that it never existed (INVALID_TICKET), however its cancel hook and the worker
        interleave with this call."""
        if entry.outcome is not None and entry.outcome.cancelled:
            return
        self.close_result(entry.task.task_id)

    @staticmethod
    def _finished(entry: _Entry) -> bool:
        return entry.state is _State.FINISHED

    def close_result(self, task_id: str) -> bool:
        with self._lock:
            entry = self._tasks.get(task_id)
            if entry is None or entry.state is not _State.FINISHED:
                return False
            del self._tasks[task_id]
        self._close_outcome(entry)
        return True

    def get_task_submitted_timestamp(self, task_id: str) -> float | None:
        entry = self._tasks.get(task_id)
        return None if entry is None else entry.submitted_perf

    def _rereadable_locked(self, task_id: str) -> _Entry | None:
        """The entry of a stored result that DoGet can read again and again (not single-use data,
        not a failure or a cancellation): only such a result has an expiration time to tell."""
        entry = self._tasks.get(task_id)
        if entry is None or entry.state is not _State.FINISHED or self._lifecycle is not _Lifecycle.STARTED:
            return None
        result = None if entry.outcome is None else entry.outcome.result
        if not isinstance(result, FlightDataTaskResult) or result.single_use_data:
            return None
        return entry

    def result_expiration(self, task_id: str) -> float | None:
        with self._lock:
            entry = self._rereadable_locked(task_id)
            if entry is None:
                return None
            return time.time() + (entry.expires - time.monotonic())

    def renew_result(self, task_id: str) -> float | None:
        with self._lock:
            entry = self._rereadable_locked(task_id)
            if entry is None:
                return None
            now = time.monotonic()
            entry.expires = max(entry.expires, now + self._config.task_result_ttl_sec)
            # no wake-up needed: a renewal only postpones, and the reaper looks again at the old expiry
            return time.time() + (entry.expires - now)

    # -- metrics source -----------------------------------------------------------------------------

    @property
    def task_queue_depth(self) -> int:
        return self._queued

    @property
    def close_queue_depth(self) -> int:
        return self._closers.depth

    @property
    def running_count(self) -> int:
        return self._running

    @property
    def stored_results(self) -> tuple[int, int]:
        """Results kept for clients to fetch: (how many, their bytes)."""
        return self._stored_count, self._stored_bytes

    @property
    def result_limits(self) -> tuple[int, int]:
        """The budget for stored results: (most results, most bytes); 0 means unbounded."""
        return self._config.task_result_max_count, self._config.task_result_max_bytes

    # -- internals ----------------------------------------------------------------------------------

    def _finish_locked(self, entry: _Entry, outcome: TaskExecutionResult, size: int = 0) -> None:
        """Record the outcome and schedule its expiry; the caller sets ``entry.done`` after unlocking.

        A result counts in the stored-result budget (``size`` bytes) until it is evicted or closed.
        """
        entry.outcome = outcome
        entry.state = _State.FINISHED
        if outcome.result is not None and self._lifecycle is _Lifecycle.STARTED:
            entry.stored_bytes = size
            self._stored_count += 1
            self._stored_bytes += size
        if self._lifecycle is _Lifecycle.STARTED:
            was_empty = not self._expiry
            entry.expires = time.monotonic() + self._config.task_result_ttl_sec
            self._expiry.append((entry.expires, entry))
            if was_empty:
                self._expiry_cond.notify()

    def _run(self, entry: _Entry) -> None:
        """A worker's job: run the task in the submitter's context and record how it ended."""
        with self._lock:
            if entry.state is not _State.QUEUED:  # cancelled while queued
                return
            entry.state = _State.RUNNING
            self._queued -= 1
            self._running += 1
        metrics = self._metrics
        assert metrics is not None  # set by start(), before any submit
        task = entry.task
        started = time.monotonic()
        metrics.wait.observe(started - entry.submitted_mono)
        try:
            outcome = entry.context.run(execute_task, task, self._log_limit)
        except BaseException as e:  # execute_task handles everything; this keeps waiters from hanging
            log.error("task_executor_failed", task_id=task.task_id, exc_info=e)
            outcome = internal_failure(task)
        finished = time.monotonic()
        result = outcome.result
        size = _result_size(task.task_id, result)  # user code (a result's nbytes): outside the lock
        with self._lock:
            self._running -= 1
            late = entry.state is not _State.RUNNING  # stop() reported it cancelled already
            if not late:
                self._finish_locked(entry, outcome, size)
        metrics.duration.observe(finished - started)
        if late:
            if isinstance(result, (FlightDataTaskResult, ListFlightsTaskResult)):
                close_quietly(task.task_id, result)
            return
        if isinstance(result, FlightDataTaskResult) and entry.stored_bytes is not None:
            # a single-use result read by its DoGet is closed then: from then on it does not count
            result.add_close_callback(lambda: self._unstore(entry))
        entry.done.set()
        metrics.e2e_duration.observe(finished - entry.submitted_mono)
        # as in the original package: completed counts every task that finished, error only the
        # failures that are the server's (not the client's) fault
        metrics.completed.inc()
        if outcome.cancelled:
            metrics.cancelled.inc()
        elif outcome.error is not None and not outcome.error.client_error:
            metrics.error.inc()

    def _reap(self) -> None:
        """The reaper thread: evict outcomes whose TTL passed, oldest first."""
        while True:
            expired: list[_Entry] = []
            with self._expiry_cond:
                while not expired:
                    if self._lifecycle is not _Lifecycle.STARTED:
                        return
                    now = time.monotonic()
                    while self._expiry and self._expiry[0][0] <= now:
                        self._expire_locked(self._expiry.popleft()[1], now, expired)
                    while self._renewed and self._renewed[0][0] <= now:
                        self._expire_locked(heapq.heappop(self._renewed)[2], now, expired)
                    if not expired:
                        heads = [queue[0][0] for queue in (self._expiry, self._renewed) if queue]
                        self._expiry_cond.wait(min(heads) - now if heads else None)
            for entry in expired:
                self._close_outcome(entry)

    def _expire_locked(self, entry: _Entry, now: float, expired: list[_Entry]) -> None:
        task_id = entry.task.task_id
        # Skip outcomes already gone (closed, cancelled); identity guards against a new task that
        # reused the id.
        if self._tasks.get(task_id) is not entry:
            return
        if entry.expires > now:  # renewed since: wait for the new expiry
            self._renewals += 1
            heapq.heappush(self._renewed, (entry.expires, self._renewals, entry))
            return
        del self._tasks[task_id]
        expired.append(entry)

    def _unstore(self, entry: _Entry) -> None:
        """Take a result out of the stored-result budget, once (it was evicted, closed or read)."""
        with self._lock:
            stored, entry.stored_bytes = entry.stored_bytes, None
            if stored is not None:
                self._stored_count -= 1
                self._stored_bytes -= stored

    def _close_outcome(self, entry: _Entry) -> None:
        """Close an evicted outcome's result on the close threads (closing waits for readers)."""
        self._unstore(entry)
        outcome = entry.outcome
        if outcome is None or outcome.result is None:
            return
        result = outcome.result
        task_id = entry.task.task_id
        if not isinstance(result, (FlightDataTaskResult, ListFlightsTaskResult)):
            return  # a service's own result object: nothing of ours to close
        if not self._closers.submit(lambda: close_quietly(task_id, result)):
            close_quietly(task_id, result)  # the closers stopped: close here

    def _count_cancelled(self, count: int) -> None:
        if count and self._metrics is not None:
            self._metrics.cancelled.inc(count)
