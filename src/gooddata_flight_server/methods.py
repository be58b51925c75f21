"""The user's side of the server: the Flight RPC methods a data service implements.

A data service subclasses :class:`FlightServerMethods`, overrides the RPCs it serves and hands the
server a factory marked with :func:`flight_server_methods`. Every RPC left alone answers
NOT_IMPLEMENTED.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, cast

import pyarrow.flight

from gooddata_flight_server.rpc import task_flow
from gooddata_flight_server.rpc.call import CALL_FINALIZER_KEY, CALL_INFO_KEY, CallFinalizer, CallInfo
from gooddata_flight_server.rpc.task_stream import task_result_stream
from gooddata_flight_server.tasks import Task, TaskExecutionResult, TaskExecutor

if TYPE_CHECKING:
    from gooddata_flight_server.context import ServerContext

__all__ = ["FlightServerMethods", "FlightServerMethodsFactory", "flight_server_methods", "is_methods_factory"]


class FlightServerMethodsFactory(Protocol):
    """Called once at startup, after the server is bound, with the full :class:`ServerContext`."""

    def __call__(self, ctx: ServerContext) -> FlightServerMethods: ...


_FACTORY_MARK = "__is_flight_server_methods__"  # the original package's marker


def flight_server_methods(fun: FlightServerMethodsFactory) -> FlightServerMethodsFactory:
    """Mark the factory of a data service's methods so that the CLI can find it in a module.

    As in the original package, the factory is wrapped (``__wrapped__`` is the function itself),
    so any callable can be marked, bound methods included.
    """

    @functools.wraps(fun)
    def factory(ctx: ServerContext) -> FlightServerMethods:
        return fun(ctx)

    setattr(factory, _FACTORY_MARK, True)
    return factory


def is_methods_factory(obj: object) -> bool:
    return callable(obj) and getattr(obj, _FACTORY_MARK, False) is True


class FlightServerMethods:
    """The eight Flight RPCs, each NOT_IMPLEMENTED until a subclass overrides it.

    Signatures follow ``pyarrow.flight.FlightServerBase``; implementations are called on gRPC threads,
    concurrently, so they must be thread-safe.
    """

    def on_shutdown(self) -> None:  # an optional hook, not abstract on purpose
        """Called once when the server stops, after in-flight calls have drained and the task executor
        has stopped (tasks cancelled, given what is left of the drain deadline), before the other
        parts of the server stop: close databases, pools and clients here.

        Not called when the server never served (its startup failed). Errors are logged. Does
        nothing by default.
        """

    @staticmethod
    def call_info_middleware(from_context: pyarrow.flight.ServerCallContext) -> CallInfo:
        """The :class:`CallInfo` of the current call: method and request headers."""
        return cast(CallInfo, from_context.get_middleware(CALL_INFO_KEY))

    @staticmethod
    def call_finalizer_middleware(from_context: pyarrow.flight.ServerCallContext) -> CallFinalizer:
        """The :class:`CallFinalizer` of the current call, to run code when the call ends."""
        return cast(CallFinalizer, from_context.get_middleware(CALL_FINALIZER_KEY))

    @staticmethod
    def do_get_task_result(
        context: pyarrow.flight.ServerCallContext, task_executor: TaskExecutor, task_id: str
    ) -> pyarrow.flight.FlightDataStream:
        """Stream the data of a finished task, or raise the Flight error that says why there is none.

        Unknown or expired task → INVALID_TICKET; failed task → its error; cancelled task →
        COMMAND_CANCELLED; single-use data already read → COMMAND_RESULT_CONSUMED. The data stays
        locked while it streams and is released (single-use data closed) when the call ends.
        """
        return task_result_stream(context, task_executor, task_id)

    # -- long-running queries: tasks behind GetFlightInfo ---------------------------------------

    @staticmethod
    def task_flight_info(
        context: pyarrow.flight.ServerCallContext,
        ctx: ServerContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        create_task: Callable[[pyarrow.flight.FlightDescriptor], Task],
    ) -> pyarrow.flight.FlightInfo:
        """A whole GetFlightInfo answered by a task: submit ``create_task(descriptor)``, wait for it
        and answer the FlightInfo of its result, whose one endpoint's ticket is the task id, at
        ``ctx.location``, with ``expiration_time`` (when the result will be evicted; until then
        DoGet can be retried, and RenewFlightEndpoint extends it). DoGet then streams it with
        ``do_get_task_result(context, ctx.task_executor, ticket.ticket.decode())``.

        A client that cancels the call, or whose deadline passes, gets its task cancelled; so does
        the server's ``call_deadline_sec``, answering TIMEOUT. With the request header
        ``x-quiver-pollable`` the call speaks GoodData FlexConnect's polling protocol instead: it
        waits ``task_poll_interval_sec`` at most, then answers the retryable POLL error whose
        RetryInfo holds the descriptors to retry or cancel with (``gooddata_flight_server.client``
        follows it).
        """
        return task_flow.task_flight_info(
            context,
            ctx.task_executor,
            descriptor,
            create_task,
            [ctx.location],
            call_deadline_sec=ctx.config.call_deadline_sec,
            poll_interval_sec=ctx.config.task_poll_interval_sec,
        )

    @staticmethod
    def wait_for_task(
        context: pyarrow.flight.ServerCallContext, ctx: ServerContext, task_id: str
    ) -> TaskExecutionResult:
        """Wait for a submitted task and return how it ended; cancel it when the client cancels the
        call (COMMAND_CANCELLED) or ``call_deadline_sec`` passes (TIMEOUT)."""
        deadline_sec = ctx.config.call_deadline_sec
        deadline = time.monotonic() + deadline_sec if deadline_sec > 0 else None
        return task_flow.wait_for_task(context, ctx.task_executor, task_id, deadline=deadline)

    def task_id_for_ticket(self, ticket: bytes) -> str | None:
        """The id of the task whose result a ticket fetches; None when the ticket names no task.

        The server's standard actions use it: ``CancelFlightInfo`` cancels the tasks of a
        FlightInfo's endpoints, ``RenewFlightEndpoint`` keeps an endpoint's result longer. By
        default a ticket is the task id itself (what :meth:`task_flight_info` writes), or
        FlexConnect's ``{"task_id": ...}`` JSON; override it for tickets of another shape.
        """
        return task_flow.ticket_task_id(ticket)

    def list_flights(
        self, context: pyarrow.flight.ServerCallContext, criteria: bytes
    ) -> Iterable[pyarrow.flight.FlightInfo]:
        raise NotImplementedError("ListFlights is not implemented by this service.")

    def get_flight_info(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.FlightInfo:
        raise NotImplementedError("GetFlightInfo is not implemented by this service.")

    def get_schema(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.SchemaResult:
        raise NotImplementedError("GetSchema is not implemented by this service.")

    def do_put(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.FlightMetadataWriter,
    ) -> None:
        raise NotImplementedError("DoPut is not implemented by this service.")

    def do_get(
        self, context: pyarrow.flight.ServerCallContext, ticket: pyarrow.flight.Ticket
    ) -> pyarrow.flight.FlightDataStream:
        raise NotImplementedError("DoGet is not implemented by this service.")

    def do_exchange(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.MetadataRecordBatchWriter,
    ) -> None:
        raise NotImplementedError("DoExchange is not implemented by this service.")

    def list_actions(self, context: pyarrow.flight.ServerCallContext) -> Iterable[pyarrow.flight.ActionType]:
        raise NotImplementedError("ListActions is not implemented by this service.")

    def do_action(
        self, context: pyarrow.flight.ServerCallContext, action: pyarrow.flight.Action
    ) -> Iterable[pyarrow.flight.Result]:
        raise NotImplementedError("DoAction is not implemented by this service.")
