"""The Flight protocol's ``CancelFlightInfo`` and ``RenewFlightEndpoint``, answered by the server.

For endpoints whose tickets name tasks of the server's executor (``methods.task_id_for_ticket``),
the server answers both actions itself, so every task-based service has them with nothing to write:

- ``CancelFlightInfo`` cancels the tasks of the FlightInfo's endpoints, queued, running or finished
  (the stored result is dropped), and answers CANCELLED, CANCELLING (asked to stop, still running a
  moment), or NOT_CANCELLABLE (the task refused);
- ``RenewFlightEndpoint`` keeps the endpoint's stored result for another ``task_result_ttl_sec``
  and answers the endpoint with its new ``expiration_time``.

Endpoints that name no task known here go to the service's own ``do_action``; a service that has
none answers INVALID_TICKET (the protocol asks for "not found" there, which Flight has no error
class for).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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

__all__ = ["NAMES", "answer", "with_standard_actions"]

NAMES = frozenset(name for name, _ in STANDARD_ACTIONS)


def answer(
    methods: FlightServerMethods,
    executor: TaskExecutor,
    context: pyarrow.flight.ServerCallContext,
    action: pyarrow.flight.Action,
) -> Iterable[pyarrow.flight.Result]:
    """The results of a standard action (``action.type`` is one of :data:`NAMES`)."""
    body = action.body.to_pybytes() if action.body is not None else b""
    try:
        if action.type == CANCEL_FLIGHT_INFO:
            info = decode_cancel_flight_info_request(body)
            task_ids = _known(methods, executor, (e.ticket.ticket for e in info.endpoints))
            if task_ids:
                return [
                    pyarrow.flight.Result(encode_cancel_flight_info_result(cancel_tasks(executor, task_ids)))
                ]
        else:
            assert action.type == RENEW_FLIGHT_ENDPOINT
            endpoint = decode_renew_flight_endpoint_request(body)
            task_id = methods.task_id_for_ticket(endpoint.ticket.ticket)
            expires = None if task_id is None else executor.renew_result(task_id)
            if expires is not None:
                return [pyarrow.flight.Result(endpoint_expiring_at(endpoint, expires).serialize())]
    except ValueError as e:
        raise ErrorInfo.bad_argument(f"The body of {action.type} is not a valid request: {e}") from None
    try:
        # read here, so that a generator's NotImplementedError is caught as well
        return list(methods.do_action(context, action))
    except NotImplementedError:
        raise ErrorInfo.for_reason(
            ErrorCode.INVALID_TICKET,
            f"{action.type}: no ticket of the request names a task result known here (read already, "
            "expired, or produced on another server).",
        ).to_user_error() from None


def _known(methods: FlightServerMethods, executor: TaskExecutor, tickets: Iterable[bytes]) -> list[str]:
    task_ids = (methods.task_id_for_ticket(ticket) for ticket in tickets)
    return [t for t in task_ids if t is not None and executor.get_task_submitted_timestamp(t) is not None]


def with_standard_actions(actions: Iterable[Any]) -> list[Any]:
    """The service's actions (``ActionType``s or ``(name, description)`` tuples, as pyarrow takes
    them) followed by the standard ones it does not list itself."""
    listed = list(actions)
    names = {a.type if isinstance(a, pyarrow.flight.ActionType) else a[0] for a in listed}
    return listed + [pyarrow.flight.ActionType(n, d) for n, d in STANDARD_ACTIONS if n not in names]
