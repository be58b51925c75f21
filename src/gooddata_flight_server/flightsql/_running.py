"""Running a query's task for a GetFlightInfo call: submit it, wait for it, and stop it if the caller
goes away (a client that cancels its call, or whose deadline passes, leaves no work behind)."""

from __future__ import annotations

import pyarrow.flight
import structlog

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.tasks import FlightDataTaskResult, Task, TaskExecutor, TaskWaitTimeoutError

__all__ = ["run_query_task"]

log = structlog.get_logger(__name__)

_CLIENT_CHECK_SEC = 0.25
"""How often a call waiting for its task checks that its client is still there."""


def run_query_task(
    context: pyarrow.flight.ServerCallContext, executor: TaskExecutor, task: Task
) -> FlightDataTaskResult:
    """The finished task's result, or the Flight error that tells the client why there is none."""
    task_id = task.task_id
    executor.submit(task)
    while True:
        try:
            execution = executor.wait_for_result(task_id, timeout=_CLIENT_CHECK_SEC)
        except TaskWaitTimeoutError:
            if context.is_cancelled():
                # a task that cannot be cancelled (a write, say) runs to its end, unread
                cancelled = executor.cancel(task_id)
                log.info("flightsql_query_abandoned", task_id=task_id, cancelled=cancelled)
                raise ErrorInfo.for_reason(
                    ErrorCode.COMMAND_CANCELLED,
                    f"The query was cancelled because its caller went away (task {task_id}).",
                ).to_cancelled_error() from None
            continue
        break
    if execution is None or execution.cancelled:  # None: a concurrent cancel dropped the result
        raise ErrorInfo.for_reason(
            ErrorCode.COMMAND_CANCELLED, f"The query was cancelled (task {task_id})."
        ).to_server_error()
    if execution.error is not None:
        raise execution.error.as_flight_error(for_client=True)
    result = execution.result
    if not isinstance(result, FlightDataTaskResult):
        raise TypeError(f"the query task {task_id} returned {type(result).__name__}, not Flight data")
    return result
