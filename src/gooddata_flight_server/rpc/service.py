"""The pyarrow Flight server that hands each RPC to the user's methods through one error boundary.

Every RPC goes edge middleware → handler here → user method. One handler body serves all eight:
it makes the call's span current while the user's code runs (when tracing is on), passes what the
user's method raised through :func:`~gooddata_flight_server.rpc.boundary.reject`, and shapes what
it returned: results that iterate stay behind the boundary, data the server streams is counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias, cast

import pyarrow
import pyarrow.flight
from opentelemetry import trace

from gooddata_flight_server.errors.classify import UnimplementedStatus
from gooddata_flight_server.methods import FlightServerMethods
from gooddata_flight_server.rpc import standard_actions
from gooddata_flight_server.rpc.boundary import guarded, guarded_stream, reject
from gooddata_flight_server.rpc.call import CALL_INFO_KEY, CallInfo
from gooddata_flight_server.tasks import TaskExecutor

__all__ = ["FlightService"]

_NO_SPAN = contextlib.nullcontext()
Context: TypeAlias = pyarrow.flight.ServerCallContext


class FlightService(pyarrow.flight.FlightServerBase):  # type: ignore[misc]
    """Binds on construction (pyarrow starts serving at once); ``methods`` (and the task executor
    the standard actions use) are set once the factory ran.

    Until then the availability gate rejects every call, so handlers never see ``methods`` unset.
    """

    def __init__(
        self,
        location: str,
        middleware: Mapping[str, pyarrow.flight.ServerMiddlewareFactory],
        tls_certificates: list[tuple[bytes, bytes]] | None = None,
        verify_client: bool = False,
        root_certificates: bytes | None = None,
    ) -> None:
        super().__init__(
            location,
            tls_certificates=tls_certificates,
            verify_client=verify_client,
            root_certificates=root_certificates,
            middleware=dict(middleware),
        )
        self.methods: FlightServerMethods = FlightServerMethods()
        self.task_executor: TaskExecutor | None = None

    def _handle(self, method: str, context: Context, run: Callable[[], Any]) -> tuple[Any, CallInfo | None]:
        """Run the user's method for the call: the span current, errors through the boundary."""
        call: CallInfo | None = context.get_middleware(CALL_INFO_KEY)
        span = None if call is None else call.span
        try:
            with _NO_SPAN if span is None else trace.use_span(span, end_on_exit=False):
                return run(), call
        except Exception as e:
            reject(method, e)

    @staticmethod
    def _streams(call: CallInfo | None, context: Context) -> None:
        """The answer streams after the handler returned: the call's end may need to tell whether
        the client went away (only asked when metrics are on)."""
        if call is not None and call.started:
            call.context = context

    def list_flights(self, context: Context, criteria: bytes) -> Iterable[Any]:
        items, call = self._handle(
            "ListFlights", context, lambda: self.methods.list_flights(context, criteria)
        )
        self._streams(call, context)
        return guarded("ListFlights", items, call)

    def get_flight_info(self, context: Context, descriptor: pyarrow.flight.FlightDescriptor) -> Any:
        return self._handle(
            "GetFlightInfo", context, lambda: self.methods.get_flight_info(context, descriptor)
        )[0]

    def get_schema(self, context: Context, descriptor: pyarrow.flight.FlightDescriptor) -> Any:
        return self._handle("GetSchema", context, lambda: self.methods.get_schema(context, descriptor))[0]

    def do_put(
        self,
        context: Context,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.FlightMetadataWriter,
    ) -> None:
        _, call = self._handle(
            "DoPut", context, lambda: self.methods.do_put(context, descriptor, reader, writer)
        )
        _count_received(call, reader)

    def do_get(self, context: Context, ticket: pyarrow.flight.Ticket) -> pyarrow.flight.FlightDataStream:
        stream, call = self._handle("DoGet", context, lambda: self.methods.do_get(context, ticket))
        self._streams(call, context)
        # a Table or RecordBatchReader returned as it is: streamed (and counted) by the server
        if isinstance(stream, pyarrow.Table):
            if call is not None:
                call.sent_if_complete = (stream.num_rows, stream.nbytes)
            return pyarrow.flight.RecordBatchStream(stream)
        if isinstance(stream, pyarrow.RecordBatchReader):
            return guarded_stream(stream.schema, stream, call)
        return stream

    def do_exchange(
        self,
        context: Context,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.MetadataRecordBatchWriter,
    ) -> None:
        _, call = self._handle(
            "DoExchange", context, lambda: self.methods.do_exchange(context, descriptor, reader, writer)
        )
        self._streams(call, context)
        _count_received(call, reader)

    def list_actions(self, context: Context) -> Iterable[Any]:
        actions, call = self._handle("ListActions", context, lambda: self._list_actions(context))
        self._streams(call, context)
        return cast(list[Any], actions)

    def _list_actions(self, context: Context) -> list[Any]:
        own = self._own_actions(context)
        return own if self.task_executor is None else standard_actions.with_standard_actions(own)

    def _own_actions(self, context: Context) -> list[Any]:
        try:
            return list(self.methods.list_actions(context))
        except UnimplementedStatus:
            raise
        except NotImplementedError:
            return []

    def do_action(self, context: Context, action: pyarrow.flight.Action) -> Iterable[Any]:
        executor = self.task_executor
        if (
            executor is not None
            and action.type in standard_actions.NAMES
            # a service that lists a standard action answers it itself (as with the original package)
            and action.type not in standard_actions.listed_names(self._own_actions(context))
        ):
            run = lambda: standard_actions.answer(self.methods, executor, context, action)  # noqa: E731
        else:
            run = lambda: self.methods.do_action(context, action)  # noqa: E731
        items, call = self._handle("DoAction", context, run)
        self._streams(call, context)
        return guarded("DoAction", items, call)


def _count_received(call: CallInfo | None, reader: pyarrow.flight.MetadataRecordBatchReader) -> None:
    """The batches the service read from the client, from the reader's own statistics (the service
    reads the real pyarrow reader: rows and bytes are counted only where the server reads itself)."""
    if call is not None and call.started:
        call.received_batches = reader.stats.num_record_batches
