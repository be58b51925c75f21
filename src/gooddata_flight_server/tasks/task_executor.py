"""What a task executor is: the interface services use through ``ctx.task_executor``.

A data service submits a :class:`~gooddata_flight_server.tasks.task.Task`, waits for its outcome
(typically in GetFlightInfo) and later streams the result (DoGet with the task id as the ticket).
Between the two calls the executor keeps the outcome; the server's implementation is
:class:`~gooddata_flight_server.tasks.thread_task_executor.ThreadTaskExecutor`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Protocol

from gooddata_flight_server.tasks.task import Task
from gooddata_flight_server.tasks.task_result import TaskExecutionResult

__all__ = ["TaskExecutor", "TaskExecutorConfig", "TaskExecutorSettings", "TaskWaitTimeoutError"]


class TaskWaitTimeoutError(TimeoutError):
    """:meth:`TaskExecutor.wait_for_result` gave up before the task finished; the task goes on.

    A ``TimeoutError``, as in the original package: services wait with ``except TimeoutError:``.
    Carries what a service needs to answer with a POLL error and let the client come back later.
    """

    def __init__(self, task_id: str, cmd: bytes) -> None:
        super().__init__(f"timed out waiting for task {task_id} to finish")
        self.task_id = task_id
        self.cmd = cmd


class TaskExecutor(abc.ABC):
    """Runs tasks and keeps their outcomes until they are read or expire."""

    @abc.abstractmethod
    def submit(self, task: Task) -> None:
        """Queue the task to run. Raises a retryable ``FlightUnavailableError`` when the executor is
        full (BACKPRESSURE) or shutting down (SHUTTING_DOWN), ValueError for a duplicate task id."""

    @abc.abstractmethod
    def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskExecutionResult | None:
        """Block until the task finishes and return how it ended; None for an unknown (or evicted) id.

        Raises :class:`TaskWaitTimeoutError` when ``timeout`` seconds pass first.
        """

    @abc.abstractmethod
    def cancel(self, task_id: str) -> bool:
        """Cancel a queued or running task, or evict a finished one's result. (ThreadTaskExecutor
        keeps the outcome of a cancelled task until it expires, so that waiters learn it was cancelled.)

        False only when the task refused (it is not cancellable); True for an unknown id, since there
        is nothing left to cancel.
        """

    @abc.abstractmethod
    def close_result(self, task_id: str) -> bool:
        """Evict a finished task's outcome now and close its result; False if the id is unknown or the
        task has not finished (use :meth:`cancel` to stop it)."""

    @abc.abstractmethod
    def get_task_submitted_timestamp(self, task_id: str) -> float | None:
        """When the task was submitted, as a ``time.perf_counter()`` reading; None for an unknown id.

        The clock is the original package's: services (FlexConnect among them) compare it with
        ``time.perf_counter()`` to enforce a deadline on the whole call.
        """

    # Not abstract: executors written for the original package have neither; the server then
    # leaves endpoints without expiration_time and answers RenewFlightEndpoint with INVALID_TICKET.

    def result_expiration(self, task_id: str) -> float | None:
        """When a finished task's result will be evicted, as a ``time.time()`` reading: until then
        DoGet can read it again. None for an unknown id, a task still running, a result that can be
        read only once (single-use data), a failed or cancelled task, or an executor that does not
        tell."""
        return None

    def renew_result(self, task_id: str) -> float | None:
        """Keep a finished task's result for another full TTL from now and return its new
        expiration (``time.time()``); None when :meth:`result_expiration` would be None. A renewed
        result keeps counting in the stored-result budget."""
        return None


class TaskExecutorConfig(Protocol):
    """The settings the executor reads; ``ServerConfig`` has them (this keeps tasks below settings)."""

    @property
    def task_threads(self) -> int: ...

    @property
    def task_close_threads(self) -> int: ...

    @property
    def task_result_ttl_sec(self) -> float: ...

    @property
    def task_queue_size(self) -> int: ...

    @property
    def task_result_max_count(self) -> int: ...

    @property
    def task_result_max_bytes(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class TaskExecutorSettings:
    """A :class:`TaskExecutorConfig` for executors built outside a server (the original package's
    constructor arguments map onto it); 0 means unbounded for the queue and the stored results."""

    task_threads: int = 4
    task_close_threads: int = 2
    task_result_ttl_sec: float = 15.0
    task_queue_size: int = 0
    task_result_max_count: int = 0
    task_result_max_bytes: int = 0
