"""The Flight protocol's ``CancelFlightInfo`` and ``RenewFlightEndpoint``, answered by the server.

For endpoints whose tickets name tasks of the server's executor (``methods.task_id_for_ticket``),
the server answers both actions itself, so every task-based service has them with nothing to write:

- ``CancelFlightInfo`` cancels the tasks of the FlightInfo's endpoints, queued, running or finished
  (the stored result is dropped), and answers CANCELLED, CANCELLING (asked to stop, still running a
  moment), or NOT_CANCELLABLE (the task refused);
- ``RenewFlightEndpoint`` keeps the endpoint's stored result for another ``task_result_ttl_sec``
  and answers the endpoint with its new ``expiration_time``.

Endpoints that name no task known here answer INVALID_TICKET (the protocol asks for "not found",
which Flight has no error class for). A service that lists one of these actions in its own
ListActions answers it itself: its ``do_action`` gets it, as with the original package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pyarrow.flight

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.flight_protocol import (
    CANCEL_FLIGHT_INFO,
    RENEW_FLIGHT_ENDPOINT,
    STANDARD_ACTIONS,
    decode_cancel_flight_info_request,
    decode_renew_flight_endpoint_request,
    encode_cancel_flight_info_result,
    endpoint_expiring_at,
)
from gooddata_flight_server.methods import FlightServerMethods
from gooddata_flight_server.tasks.cancellation import cancel_tasks
from gooddata_flight_server.tasks.task_executor import TaskExecutor

__all__ = ["NAMES", "answer", "listed_names", "with_standard_actions"]

_T = TypeVar("_T")

NAMES = frozenset(name for name, _ in STANDARD_ACTIONS)


def answer(
    methods: FlightServerMethods,
    executor: TaskExecutor,
    context: pyarrow.flight.ServerCallContext,
    action: pyarrow.flight.Action,
) -> Iterable[pyarrow.flight.Result]:
    """The results of a standard action (``action.type`` is one of :data:`NAMES`)."""
    body = action.body.to_pybytes() if action.body is not None else b""
    if action.type == CANCEL_FLIGHT_INFO:
        info = _decoded(action.type, decode_cancel_flight_info_request, body)
        task_ids = _known(methods, executor, (e.ticket.ticket for e in info.endpoints))
        if task_ids:
            return [pyarrow.flight.Result(encode_cancel_flight_info_result(cancel_tasks(executor, task_ids)))]
        what = "a task"
    else:
        assert action.type == RENEW_FLIGHT_ENDPOINT
        endpoint = _decoded(action.type, decode_renew_flight_endpoint_request, body)
        task_id = methods.task_id_for_ticket(endpoint.ticket.ticket)
        expires = None if task_id is None else executor.renew_result(task_id)
        if expires is not None:
            return [pyarrow.flight.Result(endpoint_expiring_at(endpoint, expires).serialize())]
        what = "a task result that can be read again"
    raise ErrorInfo.for_reason(
        ErrorCode.INVALID_TICKET,
        f"{action.type}: no ticket of the request names {what} known here (read already, expired, "
        "or produced on another server).",
    ).to_user_error()


def _decoded(name: str, decode: Callable[[bytes], _T], body: bytes) -> _T:
    try:
        return decode(body)
    except ValueError as e:
        raise ErrorInfo.bad_argument(f"The body of {name} is not a valid request: {e}") from None


def _known(methods: FlightServerMethods, executor: TaskExecutor, tickets: Iterable[bytes]) -> list[str]:
    task_ids = (methods.task_id_for_ticket(ticket) for ticket in tickets)
    return [t for t in task_ids if t is not None and executor.get_task_submitted_timestamp(t) is not None]


def listed_names(actions: Iterable[Any]) -> set[str]:
    """The names of a service's actions (``ActionType``s or ``(name, description)`` tuples, as
    pyarrow takes them)."""
    return {a.type if isinstance(a, pyarrow.flight.ActionType) else a[0] for a in actions}


def with_standard_actions(actions: Iterable[Any]) -> list[Any]:
    """The service's actions followed by the standard ones it does not list itself."""
    listed = list(actions)
    names = listed_names(listed)
    return listed + [pyarrow.flight.ActionType(n, d) for n, d in STANDARD_ACTIONS if n not in names]
