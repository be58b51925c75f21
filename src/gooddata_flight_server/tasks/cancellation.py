"""Cancelling the tasks behind a FlightInfo: the one place that maps Flight's cancel requests to tasks.

Flight's ``CancelFlightInfo`` action (and Flight SQL's deprecated ``CancelQuery``) name a query by
the FlightInfo the client got for it. The methods class turns each endpoint's ticket into a task id
(``FlightServerMethods.task_id_for_ticket``) and :func:`cancel_tasks` cancels those tasks through
the task executor, using nothing but its public interface, so the same function serves any ticket
format that maps to task ids.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.flight_protocol import CancelStatus
from gooddata_flight_server.tasks.task_executor import TaskExecutor, TaskWaitTimeoutError

__all__ = ["cancel_task", "cancel_tasks"]

log = structlog.get_logger(__name__)


def cancel_task(executor: TaskExecutor, task_id: str) -> CancelStatus | None:
    """Cancel one task: CANCELLED when it is over (it was queued, or had finished and its result is
    dropped), CANCELLING when it was running and has been asked to stop, NOT_CANCELLABLE when it
    refused; None when the executor does not know the task (finished and read, expired, or never
    run here)."""
    if executor.get_task_submitted_timestamp(task_id) is None:
        return None
    if not executor.cancel(task_id):
        return CancelStatus.NOT_CANCELLABLE
    try:
        executor.wait_for_result(task_id, timeout=0)
    except TaskWaitTimeoutError:
        return CancelStatus.CANCELLING
    return CancelStatus.CANCELLED


def cancel_tasks(executor: TaskExecutor, task_ids: Iterable[str]) -> CancelStatus:
    """Cancel every task of a FlightInfo; the least final status wins (NOT_CANCELLABLE, then
    CANCELLING, then CANCELLED). INVALID_TICKET (BAD_ARGUMENT status) when none is known here."""
    statuses: dict[str, CancelStatus | None] = {
        task_id: cancel_task(executor, task_id) for task_id in task_ids
    }
    log.info(
        "tasks_cancel_requested",
        tasks={task_id: None if s is None else s.name for task_id, s in statuses.items()},
    )
    known = [status for status in statuses.values() if status is not None]
    if not known:
        raise ErrorInfo.for_reason(
            ErrorCode.INVALID_TICKET,
            "No task of this FlightInfo is known here: its result was read already or expired, or it "
            "ran on another server.",
        ).to_user_error()
    for status in (CancelStatus.NOT_CANCELLABLE, CancelStatus.CANCELLING):
        if status in known:
            return status
    return CancelStatus.CANCELLED
