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
from gooddata_flight_server.observability.tracing import tracing_active
from gooddata_flight_server.tasks.results import (
    FlightDataTaskResult,
    ListFlightsTaskResult,
    TaskExecutionResult,
    TaskResult,
)
from gooddata_flight_server.tasks.task import Task, TaskError

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


def _error_for(task: Task, e: Exception) -> TaskError:
    if isinstance(e, ValueError):
        error = TaskError(
            ErrorInfo.for_exc(ErrorCode.BAD_ARGUMENT, e, include_traceback=False), client_error=True
        )
        log.info(
            "task_failed", task_id=task.task_id, code=ErrorCode.name(ErrorCode.BAD_ARGUMENT), error=str(e)
        )
    elif isinstance(e, pyarrow.flight.FlightError):
        info = ErrorInfo.maybe_from_pyarrow_error(e) or ErrorInfo.for_reason(ErrorCode.COMMAND_FAILED, str(e))
        error = TaskError(info, error_factory=type(e))
        log.info("task_failed", task_id=task.task_id, code=ErrorCode.name(info.code), error=info.msg)
    else:
        log.error("task_failed", task_id=task.task_id, exc_info=e)
        error = TaskError(
            ErrorInfo.for_exc(
                ErrorCode.COMMAND_FAILED, e, extra_msg=f"Task {task.task_id} failed", include_traceback=False
            )
        )
    try:
        replacement = task.on_task_error(e)
    except Exception:
        log.exception("task_error_hook_failed", task_id=task.task_id)
        replacement = None
    return error if replacement is None else replacement


def _run(task: Task) -> TaskExecutionResult:
    try:
        task.check_cancelled()  # cancelled between being taken from the queue and starting
        returned: object = task.run()
    except CancelledError:
        return cancelled_outcome(task)
    except Exception as e:
        if task.cancelled:  # e.g. on_task_cancel closed a connection that run() was reading
            return cancelled_outcome(task)
        returned = _error_for(task, e)
    if task.cancelled:
        if isinstance(returned, (FlightDataTaskResult, ListFlightsTaskResult)):
            close_quietly(task.task_id, returned)
        return cancelled_outcome(task)
    if isinstance(returned, TaskError):
        return _failed(task, returned)
    if isinstance(returned, (FlightDataTaskResult, ListFlightsTaskResult)):
        return TaskExecutionResult(task.task_id, task.cmd, result=returned, cancelled=False, error=None)
    log.error(
        "task_returned_invalid_value",
        task_id=task.task_id,
        returned=type(returned).__qualname__,
        expected="FlightDataTaskResult, ListFlightsTaskResult or TaskError",
    )
    return internal_failure(task)


def execute_task(task: Task) -> TaskExecutionResult:
    """Run the task; called inside the submitter's copied context, so binding here stays here."""
    structlog.contextvars.bind_contextvars(task_id=task.task_id)
    started = time.monotonic()
    if not tracing_active():  # a no-op span still costs a context attach/detach per task
        outcome = _run(task)
    else:
        with _tracer.start_as_current_span(
            "task_execution",
            attributes={"task_id": task.task_id},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            outcome = _run(task)
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
