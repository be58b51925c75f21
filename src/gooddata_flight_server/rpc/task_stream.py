"""Streaming a task's result to a DoGet caller (what ``do_get_task_result`` does).

The data of a result stays locked (see :meth:`FlightDataTaskResult.acquire_data`) for as long as
the stream runs, and pyarrow streams *after* ``do_get`` returned. The one moment we learn that the
stream is over -- sent in full, failed, or abandoned by a client that disconnected -- is the end of
the call, so the lock is released when the call ends (``CallInfo.on_end``), never by ``do_get``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow
import pyarrow.flight

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.rpc.boundary import guarded_stream
from gooddata_flight_server.rpc.call import CALL_INFO_KEY, CallInfo
from gooddata_flight_server.tasks.task_executor import TaskExecutor, TaskWaitTimeoutError
from gooddata_flight_server.tasks.task_result import FlightDataTaskResult, TaskExecutionResult

__all__ = ["task_result_stream"]


def _released_at_end(batches: Iterable[Any], on_end: Callable[[], None]) -> Iterator[Any]:
    """Fallback without the server's middleware: end of iteration, or the generator being dropped
    by pyarrow when the client goes away, releases the data."""
    try:
        yield from batches
    finally:
        on_end()


_CHECK_SEC = 0.25
"""How often a DoGet waiting for a running task looks whether its client is still there."""


def _wait(
    context: pyarrow.flight.ServerCallContext, task_executor: TaskExecutor, task_id: str
) -> TaskExecutionResult | None:
    """The task's outcome, waiting while it runs (a client may DoGet a ticket it got from a POLL
    before the task ended); a client that goes away meanwhile stops the wait, not the task."""
    while True:
        try:
            return task_executor.wait_for_result(task_id, timeout=_CHECK_SEC)
        except TaskWaitTimeoutError:
            if context.is_cancelled():
                raise ErrorInfo.for_reason(
                    ErrorCode.COMMAND_CANCELLED, f"The DoGet waiting for task '{task_id}' was cancelled."
                ).to_cancelled_error() from None


def task_result_stream(
    context: pyarrow.flight.ServerCallContext, task_executor: TaskExecutor, task_id: str
) -> pyarrow.flight.FlightDataStream:
    """The FlightDataStream of a finished task's data, or the Flight error telling why there is none.

    Waits for a task that is still running (the client holds a ticket, so the data will come).
    Errors: unknown or expired task → INVALID_TICKET; the task failed → its own error; cancelled →
    COMMAND_CANCELLED; single use data read already → COMMAND_RESULT_CONSUMED.
    """
    execution = _wait(context, task_executor, task_id)
    if execution is None:
        raise ErrorInfo.for_reason(
            ErrorCode.INVALID_TICKET,
            f"Unable to serve data for task '{task_id}'. The task result is not present "
            "(the task does not exist or its result has expired).",
        ).to_user_error()
    if execution.error is not None:
        raise execution.error.as_flight_error(for_client=True)
    if execution.cancelled:
        raise ErrorInfo.for_reason(
            ErrorCode.COMMAND_CANCELLED, f"The task '{task_id}' was cancelled."
        ).to_server_error()
    result = execution.result
    if not isinstance(result, FlightDataTaskResult):
        raise ErrorInfo.for_reason(
            ErrorCode.INTERNAL_ERROR,
            f"The result of task '{task_id}' exists but is not Flight data: {type(result).__name__}.",
        ).to_internal_error()

    lock, data = result.acquire_data()
    single_use = result.single_use_data

    def release(_: BaseException | None = None) -> None:
        try:
            lock.release()
        finally:
            if single_use:
                result.close()

    call: CallInfo | None = context.get_middleware(CALL_INFO_KEY)
    if call is None:
        # Served outside GoodDataFlightServer (no middleware): tie the release to the iteration.
        batches = data.to_batches() if isinstance(data, pyarrow.Table) else data
        return pyarrow.flight.GeneratorStream(result.get_schema(), _released_at_end(batches, release))
    call.on_end.append(release)
    # counted for the gdfs_rpc_sent_* metrics: a table from its metadata, a stream per batch
    if isinstance(data, pyarrow.Table):
        call.sent_if_complete = (data.num_rows, data.nbytes)
        return pyarrow.flight.RecordBatchStream(data)
    # a reader or iterable runs code (a cursor, a generator) while it streams: keep it behind the boundary
    schema = data.schema if isinstance(data, pyarrow.RecordBatchReader) else result.get_schema()
    return guarded_stream(schema, data, call)
