"""The pyarrow Flight server that delegates to the user's methods through one error boundary.

Every RPC goes gate → middleware → handler here → user method; every handler passes what its user
method raised through :func:`gooddata_flight_server.rpc.boundary.reject`, makes the call's span
current while the user's code runs (when tracing is on) and tells the call's books (when metrics
are on) what data moved and how to tell a client cancellation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow
import pyarrow.flight
from opentelemetry import trace

from gooddata_flight_server.methods import FlightServerMethods
from gooddata_flight_server.rpc.boundary import call_span, guarded, guarded_stream, reject
from gooddata_flight_server.rpc.counting import CountingReader, counted_batches
from gooddata_flight_server.rpc.middleware import CALL_FINALIZER_KEY, CallFinalizer

__all__ = ["FlightService"]

_NO_SPAN = contextlib.nullcontext()


class FlightService(pyarrow.flight.FlightServerBase):  # type: ignore[misc]
    """Binds on construction (pyarrow starts serving at once); ``methods`` is set once the factory ran.

    Until then the availability gate rejects every call, so handlers never see ``methods`` unset.
    """

    def __init__(
        self,
        location: str,
        middleware: Mapping[str, pyarrow.flight.ServerMiddlewareFactory],
        tls_certificates: list[tuple[bytes, bytes]] | None = None,
        verify_client: bool = False,
        root_certificates: bytes | None = None,
        *,
        count_data: bool = False,
        traced: bool = False,
    ) -> None:
        super().__init__(
            location,
            tls_certificates=tls_certificates,
            verify_client=verify_client,
            root_certificates=root_certificates,
            middleware=dict(middleware),
        )
        self.methods: FlightServerMethods = FlightServerMethods()
        self._traced = traced
        self._count_data = count_data

    def _enter(self, context: pyarrow.flight.ServerCallContext) -> contextlib.AbstractContextManager[Any]:
        """Per-call prologue: the span to make current while the handler runs, and the books.

        The tracing middleware cannot make the span current in ``start_call``: pyarrow enters Python
        on gRPC threads with a fresh thread state per callback, so a context attached there is gone
        by the time the handler runs.
        """
        if self._count_data:
            finalizer = _finalizer(context)
            if finalizer is not None:
                finalizer.server_context = context  # lets the call's end tell a client cancellation
        if not self._traced:
            return _NO_SPAN
        span = call_span(context)
        return _NO_SPAN if span is None else trace.use_span(span, end_on_exit=False)

    def list_flights(self, context: pyarrow.flight.ServerCallContext, criteria: bytes) -> Iterable[Any]:
        try:
            with self._enter(context):
                return guarded("ListFlights", self.methods.list_flights(context, criteria), context)
        except Exception as e:
            reject("ListFlights", e)

    def get_flight_info(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.FlightInfo:
        try:
            with self._enter(context):
                return self.methods.get_flight_info(context, descriptor)
        except Exception as e:
            reject("GetFlightInfo", e)

    def get_schema(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.SchemaResult:
        try:
            with self._enter(context):
                return self.methods.get_schema(context, descriptor)
        except Exception as e:
            reject("GetSchema", e)

    def do_put(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.FlightMetadataWriter,
    ) -> None:
        try:
            with self._enter(context):
                self.methods.do_put(context, descriptor, self._counting(context, reader), writer)
        except Exception as e:
            reject("DoPut", e)

    def do_get(
        self, context: pyarrow.flight.ServerCallContext, ticket: pyarrow.flight.Ticket
    ) -> pyarrow.flight.FlightDataStream:
        try:
            with self._enter(context):
                stream = self.methods.do_get(context, ticket)
        except Exception as e:
            reject("DoGet", e)
        # a Table or RecordBatchReader returned as it is: streamed (and counted) by the server
        if isinstance(stream, pyarrow.Table):
            finalizer = _finalizer(context)
            if finalizer is not None:
                finalizer.count_sent(stream.num_rows, stream.nbytes, once_complete=True)
            return pyarrow.flight.RecordBatchStream(stream)
        if isinstance(stream, pyarrow.RecordBatchReader):
            finalizer = _finalizer(context) if self._count_data else None
            batches = stream if finalizer is None else counted_batches(stream, finalizer.count_sent)
            return guarded_stream(stream.schema, batches, context)
        return stream

    def do_exchange(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.MetadataRecordBatchWriter,
    ) -> None:
        try:
            with self._enter(context):
                self.methods.do_exchange(context, descriptor, self._counting(context, reader), writer)
        except Exception as e:
            reject("DoExchange", e)

    def list_actions(self, context: pyarrow.flight.ServerCallContext) -> Iterable[Any]:
        try:
            with self._enter(context):
                return guarded("ListActions", self.methods.list_actions(context), context)
        except Exception as e:
            reject("ListActions", e)

    def do_action(
        self, context: pyarrow.flight.ServerCallContext, action: pyarrow.flight.Action
    ) -> Iterable[Any]:
        try:
            with self._enter(context):
                return guarded("DoAction", self.methods.do_action(context, action), context)
        except Exception as e:
            reject("DoAction", e)

    def _counting(self, context: pyarrow.flight.ServerCallContext, reader: Any) -> Any:
        if not self._count_data:
            return reader
        finalizer = _finalizer(context)
        return reader if finalizer is None else CountingReader(reader, finalizer.count_received)


def _finalizer(context: pyarrow.flight.ServerCallContext) -> CallFinalizer | None:
    finalizer: CallFinalizer | None = context.get_middleware(CALL_FINALIZER_KEY)
    return finalizer
