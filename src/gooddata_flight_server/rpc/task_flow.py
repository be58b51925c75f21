"""GetFlightInfo answered by a task: waiting for it, polling for it, and the FlightInfo of its result.

The round trip every task-based service makes: GetFlightInfo submits a task and answers a FlightInfo
whose endpoint ticket names the task; DoGet streams the task's result (``task_stream``). Around it:

- **The caller goes away → the work stops.** :func:`wait_for_task` waits in short steps and cancels
  the task when the client cancels the call (or its gRPC deadline passes: gRPC then cancels the
  call) or when the server's own deadline for the call (``call_deadline_sec``) passes, answering
  COMMAND_CANCELLED or TIMEOUT.
- **Polling without PollFlightInfo** (pyarrow servers cannot implement it): with the request header
  ``x-quiver-pollable`` the call waits at most one poll interval and, while the task still runs,
  answers the retryable POLL error whose :class:`~gooddata_flight_server.errors.RetryInfo` carries
  a retry descriptor (``r:<task id>``) and a cancel descriptor (``c:<task id>``): the protocol
  GoodData FlexConnect speaks, byte for byte, so its clients poll any service built on tasks.
- **Expiration.** The result's endpoint carries ``expiration_time``: when the executor will evict
  the result. Until then DoGet can be retried, and ``RenewFlightEndpoint`` extends it.

Tickets written here are the task id itself (UTF-8). :func:`ticket_task_id` reads those and the
JSON tickets FlexConnect writes (``{"task_id": "..."}``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import orjson
import pyarrow.flight
import structlog

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.flight_protocol import endpoint_expiring_at
from gooddata_flight_server.rpc.call import CALL_INFO_KEY, CallInfo
from gooddata_flight_server.tasks.task import Task
from gooddata_flight_server.tasks.task_executor import TaskExecutor, TaskWaitTimeoutError
from gooddata_flight_server.tasks.task_result import FlightDataTaskResult, TaskExecutionResult

__all__ = [
    "POLLING_HEADER",
    "flight_info_for_result",
    "task_flight_info",
    "task_result",
    "ticket_task_id",
    "wait_for_task",
]

log = structlog.get_logger(__name__)

POLLING_HEADER = "x-quiver-pollable"
"""A GetFlightInfo carrying this header (any value) is answered with the polling protocol."""

_RETRY = b"r:"
_CANCEL = b"c:"
_CHECK_SEC = 0.25
"""How often a waiting call looks whether its client is still there."""

Locations = Sequence[pyarrow.flight.Location | str]


def ticket_task_id(ticket: bytes) -> str | None:
    """The task id a ticket names: the ticket itself (UTF-8), or FlexConnect's ``{"task_id": ...}``
    JSON; None when it is neither."""
    if ticket[:1] == b"{":
        try:
            payload = orjson.loads(ticket)
        except orjson.JSONDecodeError:
            return None
        task_id = payload.get("task_id") if isinstance(payload, dict) else None
        return task_id if isinstance(task_id, str) and task_id else None
    try:
        text = ticket.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text or None


def wait_for_task(
    context: pyarrow.flight.ServerCallContext,
    executor: TaskExecutor,
    task_id: str,
    *,
    deadline: float | None = None,
) -> TaskExecutionResult:
    """Wait until the task finished and return how it ended.

    ``deadline`` is a ``time.monotonic()`` reading; past it the task is cancelled and the call
    answers TIMEOUT. A client that cancels the call (or whose gRPC deadline passes) gets its task
    cancelled and COMMAND_CANCELLED. An unknown task id answers INVALID_TICKET.
    """
    execution = _wait(context, executor, task_id, deadline, cancel_if_abandoned=True)
    if execution is None:
        cancelled = executor.cancel(task_id)
        log.warning("task_call_deadline_exceeded", task_id=task_id, task_cancelled=cancelled)
        raise _timeout(task_id)
    return execution


def _wait(
    context: pyarrow.flight.ServerCallContext,
    executor: TaskExecutor,
    task_id: str,
    deadline: float | None,
    *,
    cancel_if_abandoned: bool,
) -> TaskExecutionResult | None:
    """How the task ended, or None once ``deadline`` passed first (the task is left alone)."""
    if executor.get_task_submitted_timestamp(task_id) is None:
        raise ErrorInfo.for_reason(
            ErrorCode.INVALID_TICKET,
            f"The task '{task_id}' is not known here: its result was read already or expired, or it "
            "ran on another server.",
        ).to_user_error()
    while True:
        step = _CHECK_SEC if deadline is None else min(_CHECK_SEC, max(0.0, deadline - time.monotonic()))
        try:
            execution = executor.wait_for_result(task_id, timeout=step)
        except TaskWaitTimeoutError:
            if context.is_cancelled():
                cancelled = executor.cancel(task_id) if cancel_if_abandoned else False
                log.info("task_call_abandoned", task_id=task_id, task_cancelled=cancelled)
                raise ErrorInfo.for_reason(
                    ErrorCode.COMMAND_CANCELLED,
                    f"The call waiting for task {task_id} was cancelled by its client.",
                ).to_cancelled_error() from None
            if deadline is not None and time.monotonic() >= deadline:
                return None
            continue
        if execution is None:  # dropped while the call waited: cancelled by someone else
            raise ErrorInfo.for_reason(
                ErrorCode.COMMAND_CANCELLED, f"The task '{task_id}' was cancelled."
            ).to_server_error()
        return execution


def _timeout(task_id: str) -> pyarrow.flight.FlightTimedOutError:
    return ErrorInfo.for_reason(
        ErrorCode.TIMEOUT, f"GetFlightInfo timed out while waiting for task {task_id}."
    ).to_timeout_error()


def task_result(execution: TaskExecutionResult) -> FlightDataTaskResult:
    """The Flight data of a finished task, or the Flight error telling why there is none: the task's
    own error, or COMMAND_CANCELLED."""
    if execution.error is not None:
        raise execution.error.as_flight_error(for_client=True)
    if execution.cancelled:
        raise ErrorInfo.for_reason(
            ErrorCode.COMMAND_CANCELLED, f"The task '{execution.task_id}' was cancelled."
        ).to_server_error()
    result = execution.result
    if not isinstance(result, FlightDataTaskResult):
        raise ErrorInfo.for_reason(
            ErrorCode.INTERNAL_ERROR,
            f"The result of task '{execution.task_id}' is not Flight data: {type(result).__name__}.",
        ).to_internal_error()
    return result


def flight_info_for_result(
    executor: TaskExecutor,
    descriptor: pyarrow.flight.FlightDescriptor,
    execution: TaskExecutionResult,
    locations: Locations,
) -> pyarrow.flight.FlightInfo:
    """The FlightInfo of a finished task's result: its schema, one endpoint whose ticket is the task
    id, at ``locations``, expiring when the executor will evict the result."""
    result = task_result(execution)
    task_id = execution.task_id
    endpoint = pyarrow.flight.FlightEndpoint(task_id.encode(), list(locations))
    expires = executor.result_expiration(task_id)
    if expires is not None:
        endpoint = endpoint_expiring_at(endpoint, expires)
    return pyarrow.flight.FlightInfo(result.get_schema(), descriptor, [endpoint], -1, -1)


def task_flight_info(
    context: pyarrow.flight.ServerCallContext,
    executor: TaskExecutor,
    descriptor: pyarrow.flight.FlightDescriptor,
    create_task: Callable[[pyarrow.flight.FlightDescriptor], Task],
    locations: Locations,
    *,
    call_deadline_sec: float = 0.0,
    poll_interval_sec: float = 2.0,
) -> pyarrow.flight.FlightInfo:
    """A whole GetFlightInfo answered by a task: submit ``create_task(descriptor)``, wait for it,
    answer the FlightInfo of its result (see the module's docstring for polling and cancellation).

    ``call_deadline_sec`` (0: none) bounds how long the task may take from its submission, polls
    included; ``poll_interval_sec`` is how long one poll waits.
    """
    call: CallInfo | None = context.get_middleware(CALL_INFO_KEY)
    polling = call is not None and POLLING_HEADER in call.headers
    command = descriptor.command or b""
    if polling and command.startswith(_CANCEL):
        _cancel_polled(executor, _polled_task_id(command))
    submitted_here = not (polling and command.startswith(_RETRY))
    if not submitted_here:
        task_id = _polled_task_id(command)
    else:
        task = create_task(descriptor)
        executor.submit(task)
        task_id = task.task_id
    if not polling:
        deadline = time.monotonic() + call_deadline_sec if call_deadline_sec > 0 else None
        execution = wait_for_task(context, executor, task_id, deadline=deadline)
        return flight_info_for_result(executor, descriptor, execution, locations)
    return _poll(
        context,
        executor,
        descriptor,
        task_id,
        locations,
        call_deadline_sec=call_deadline_sec,
        poll_interval_sec=poll_interval_sec,
        submitted_here=submitted_here,
    )


def _polled_task_id(command: bytes) -> str:
    try:
        task_id = command[2:].decode("utf-8")
    except UnicodeDecodeError:
        task_id = ""
    if not task_id:
        raise ErrorInfo.bad_argument("The retry or cancel descriptor names no task.")
    return task_id


def _cancel_polled(executor: TaskExecutor, task_id: str) -> None:
    # FlexConnect's answers: the cancellation is reported as an error in both cases
    if executor.cancel(task_id):
        raise ErrorInfo.for_reason(
            ErrorCode.COMMAND_CANCELLED, "The task was cancelled."
        ).to_cancelled_error()
    raise ErrorInfo.for_reason(
        ErrorCode.COMMAND_CANCEL_NOT_POSSIBLE, "The task could not be cancelled."
    ).to_cancelled_error()


def _poll(
    context: pyarrow.flight.ServerCallContext,
    executor: TaskExecutor,
    descriptor: pyarrow.flight.FlightDescriptor,
    task_id: str,
    locations: Locations,
    *,
    call_deadline_sec: float,
    poll_interval_sec: float,
    submitted_here: bool,
) -> pyarrow.flight.FlightInfo:
    if executor.get_task_submitted_timestamp(task_id) is None:
        raise ErrorInfo.bad_argument(f"Task with id '{task_id}' does not exist.")
    # a poll waits one interval. A client that gives up on a retry may come back: the task stays;
    # one that gives up on the call that submitted it never learnt the task's id: the task goes
    deadline = time.monotonic() + poll_interval_sec
    execution = _wait(context, executor, task_id, deadline, cancel_if_abandoned=submitted_here)
    if execution is not None:
        if (descriptor.command or b"").startswith(_RETRY):  # the FlightInfo describes what was asked
            descriptor = pyarrow.flight.FlightDescriptor.for_command(execution.cmd)
        return flight_info_for_result(executor, descriptor, execution, locations)
    submitted = executor.get_task_submitted_timestamp(task_id)
    if (
        call_deadline_sec > 0
        and submitted is not None
        and time.perf_counter() - submitted > call_deadline_sec
    ):
        cancelled = executor.cancel(task_id)
        log.warning("task_call_deadline_exceeded", task_id=task_id, task_cancelled=cancelled, polling=True)
        raise _timeout(task_id)
    raise ErrorInfo.poll(
        flight_info=None,
        cancel_descriptor=pyarrow.flight.FlightDescriptor.for_command(_CANCEL + task_id.encode()),
        retry_descriptor=pyarrow.flight.FlightDescriptor.for_command(_RETRY + task_id.encode()),
    )
