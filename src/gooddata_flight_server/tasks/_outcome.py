"""Running one task on a worker thread and turning whatever it does into a TaskExecutionResult.

This is where the error mapping lives (SPEC §6): ``ValueError`` is the client's fault
(BAD_ARGUMENT), a Flight error already says what the client should see (its ErrorInfo and its
type are kept), anything else is a failure of the server (COMMAND_FAILED; the traceback goes to the
server log, never to the client). A task that was cancelled ends cancelled, whatever ``run`` did
after: whoever cancelled it was told it is.
"""

from __future__ import annotations

import functools
import logging
import time
from concurrent.futures import CancelledError

import pyarrow.flight
import structlog
from opentelemetry import trace

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.errors.classify import task_error_info
from gooddata_flight_server.observability.log_limit import LogLimiter
from gooddata_flight_server.observability.tracing import tracing_active
from gooddata_flight_server.tasks.task import Task
from gooddata_flight_server.tasks.task_error import TaskError
from gooddata_flight_server.tasks.task_result import (
    FlightDataTaskResult,
    ListFlightsTaskResult,
    TaskExecutionResult,
    TaskResult,
)

__all__ = ["cancelled_outcome", "close_quietly", "execute_task", "internal_failure"]

log = structlog.get_logger(__name__)


# structlog renders through stdlib logging (observability/logging.py), so this stdlib level check
# makes the same decision as structlog's filter_by_level, for a fraction of the cost of a call
# through the lazy logger proxy: it keeps the per-task debug events off the hot path.
_debug_enabled = functools.partial(logging.getLogger(__name__).isEnabledFor, logging.DEBUG)

# A proxy resolves the global tracer provider on first use, so a provider configured after import
# (by the server at startup) is picked up; without one, spans are no-ops.
_tracer = trace.ProxyTracer("gooddata_flight_server.tasks")


def cancelled_outcome(task: Task) -> TaskExecutionResult:
    return TaskExecutionResult(task.task_id, task.cmd, result=None, cancelled=True, error=None)


def _failed(task: Task, error: TaskError) -> TaskExecutionResult:
    return TaskExecutionResult(task.task_id, task.cmd, result=None, cancelled=False, error=error)


def internal_failure(task: Task) -> TaskExecutionResult:
    """The outcome when the executor itself failed around a task (never the task's fault)."""
    return _failed(
        task,
        TaskError(
            ErrorInfo.for_reason(
                ErrorCode.COMMAND_FAILED,
                f"Task {task.task_id} failed with an unexpected error on the server.",
            )
        ),
    )


def close_quietly(task_id: str, result: TaskResult) -> None:
    """Close a result, logging rather than raising: a failing close must not stop the next one."""
    try:
        result.close()
    except Exception:
        log.exception("task_result_close_failed", task_id=task_id)


def _error_for(e: Exception) -> TaskError:
    """The TaskError for what ``run`` raised, before the task's own ``on_task_error`` has its say."""
    info, factory, client_error = task_error_info(e)
    return TaskError(info, error_factory=factory, client_error=client_error)


def _failure(
    task: Task, error: TaskError, raised: Exception | None, log_limit: LogLimiter
) -> TaskExecutionResult:
    """Let the task replace or classify its error, log it (within the rate limit), make the outcome."""
    try:
        error = task.on_task_error(error) or error
    except Exception:
        log.exception("task_error_hook_failed", task_id=task.task_id)
    info = error.error_info
    code = ErrorCode.name(info.code)
    kind = ("task_failed", info.code, error.client_error)
    if error.client_error:
        log_limit.log(kind, log.info, "task_failed", task_id=task.task_id, code=code, error=info.msg)
    elif raised is not None and not isinstance(raised, pyarrow.flight.FlightError):
        log_limit.log(kind, log.error, "task_failed", task_id=task.task_id, code=code, exc_info=raised)
    else:
        log_limit.log(kind, log.error, "task_failed", task_id=task.task_id, code=code, error=info.msg)
    return _failed(task, error)


def _run(task: Task, log_limit: LogLimiter) -> TaskExecutionResult:
    raised: Exception | None = None
    try:
        task.check_cancelled()  # cancelled between being taken from the queue and starting
        returned: object = task.run()
    except CancelledError:
        return cancelled_outcome(task)
    except Exception as e:
        if task.cancelled:  # e.g. on_task_cancel closed a connection that run() was reading
            return cancelled_outcome(task)
        raised = e
        returned = _error_for(e)
    if task.cancelled:
        # whoever cancelled the task was told it is cancelled: a late result is dropped
        if isinstance(returned, (FlightDataTaskResult, ListFlightsTaskResult)):
            close_quietly(task.task_id, returned)
        return cancelled_outcome(task)
    if isinstance(returned, TaskError):
        return _failure(task, returned, raised, log_limit)
    if returned is None:
        log.error("task_returned_nothing", task_id=task.task_id)
        return internal_failure(task)
    # any other object is the result, as in the original package (do_get_task_result streams only
    # FlightDataTaskResult; a service may read its own result objects in its own RPC methods)
    return TaskExecutionResult(task.task_id, task.cmd, result=returned, cancelled=False, error=None)  # type: ignore[arg-type]


def execute_task(task: Task, log_limit: LogLimiter) -> TaskExecutionResult:
    """Run the task; called inside the submitter's copied context, so binding here stays here."""
    structlog.contextvars.bind_contextvars(task_id=task.task_id)
    started = time.monotonic()
    if not tracing_active():  # a no-op span still costs a context attach/detach per task
        outcome = _run(task, log_limit)
    else:
        with _tracer.start_as_current_span(
            "task_execution",
            attributes={"task_id": task.task_id},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            outcome = _run(task, log_limit)
            if outcome.error is not None:
                span.set_status(trace.StatusCode.ERROR, outcome.error.error_info.msg)
            span.set_attribute("task_outcome", _outcome_name(outcome))
    if _debug_enabled():
        log.debug(
            "task_cancelled" if outcome.cancelled else "task_finished",
            task_id=task.task_id,
            outcome=_outcome_name(outcome),
            duration=time.monotonic() - started,
        )
    return outcome


def _outcome_name(outcome: TaskExecutionResult) -> str:
    if outcome.cancelled:
        return "cancelled"
    return "failed" if outcome.error is not None else "completed"
