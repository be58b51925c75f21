"""The pyarrow Flight server that delegates to the user's methods through one error boundary.

Every RPC goes gate → middleware → handler here → user method; every handler passes what its user
method raised through :func:`gooddata_flight_server.rpc.boundary.reject`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow
import pyarrow.flight
import structlog
from opentelemetry import trace

from gooddata_flight_server.methods import FlightServerMethods
from gooddata_flight_server.rpc.boundary import guarded, guarded_stream, reject
from gooddata_flight_server.rpc.counting import CountingReader, counted_batches
from gooddata_flight_server.rpc.middleware import CALL_FINALIZER_KEY, CallFinalizer

__all__ = ["FlightService"]

log = structlog.get_logger(__name__)


_NO_SPAN = contextlib.nullcontext()


def _counting(context: pyarrow.flight.ServerCallContext, reader: Any) -> Any:
    finalizer: CallFinalizer | None = context.get_middleware(CALL_FINALIZER_KEY)
    return reader if finalizer is None else CountingReader(reader, finalizer.count_received)


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
        span_key: str | None = None,
    ) -> None:
        super().__init__(
            location,
            tls_certificates=tls_certificates,
            verify_client=verify_client,
            root_certificates=root_certificates,
            middleware=dict(middleware),
        )
        self.methods: FlightServerMethods = FlightServerMethods()
        self._span_key = span_key
        self._count_data = count_data

    def _span(self, context: pyarrow.flight.ServerCallContext) -> contextlib.AbstractContextManager[Any]:
        """Make the call's SERVER span current while the handler runs.

        The tracing middleware cannot do it in ``start_call``: pyarrow enters Python on gRPC threads
        with a fresh thread state per callback, so a context attached there is gone by the time the
        handler runs.
        """
        if self._span_key is None:
            return _NO_SPAN
        middleware = context.get_middleware(self._span_key)
        if middleware is None:
            return _NO_SPAN
        return trace.use_span(middleware.span, end_on_exit=False)

    def list_flights(self, context: pyarrow.flight.ServerCallContext, criteria: bytes) -> Iterable[Any]:
        try:
            with self._span(context):
                return guarded("ListFlights", self.methods.list_flights(context, criteria))
        except Exception as e:
            reject("ListFlights", e)

    def get_flight_info(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.FlightInfo:
        try:
            with self._span(context):
                return self.methods.get_flight_info(context, descriptor)
        except Exception as e:
            reject("GetFlightInfo", e)

    def get_schema(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.SchemaResult:
        try:
            with self._span(context):
                return self.methods.get_schema(context, descriptor)
        except pyarrow.flight.FlightError as e:
            # pyarrow's GetSchema callback, unlike the other RPCs', does not turn Flight errors into
            # their status (the client gets an ArrowException whose text includes the traceback;
            # see apache/arrow#43556): re-raise a fresh copy so at least no frame of the user's
            # code is part of that text
            raise type(e)(str(e), e.extra_info) from None
        except Exception as e:
            reject("GetSchema", e)

    def do_put(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.FlightMetadataWriter,
    ) -> None:
        if self._count_data:
            reader = _counting(context, reader)
        try:
            with self._span(context):
                self.methods.do_put(context, descriptor, reader, writer)
        except Exception as e:
            reject("DoPut", e)

    def do_get(
        self, context: pyarrow.flight.ServerCallContext, ticket: pyarrow.flight.Ticket
    ) -> pyarrow.flight.FlightDataStream:
        try:
            with self._span(context):
                stream = self.methods.do_get(context, ticket)
        except Exception as e:
            reject("DoGet", e)
        finalizer: CallFinalizer | None = context.get_middleware(CALL_FINALIZER_KEY)
        if finalizer is not None:
            finalizer.server_context = context  # lets the call's end tell a client cancellation
        if isinstance(stream, pyarrow.Table):
            if finalizer is not None:
                finalizer.count_sent(stream.num_rows, stream.nbytes)
            return pyarrow.flight.RecordBatchStream(stream)
        if isinstance(stream, pyarrow.RecordBatchReader):
            batches: Any = stream
            if finalizer is not None and self._count_data:
                batches = counted_batches(stream, finalizer.count_sent)
            return guarded_stream(stream.schema, batches)
        return stream

    def do_exchange(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.MetadataRecordBatchWriter,
    ) -> None:
        if self._count_data:
            reader = _counting(context, reader)
        try:
            with self._span(context):
                self.methods.do_exchange(context, descriptor, reader, writer)
        except Exception as e:
            reject("DoExchange", e)

    def list_actions(self, context: pyarrow.flight.ServerCallContext) -> Iterable[Any]:
        try:
            with self._span(context):
                return guarded("ListActions", self.methods.list_actions(context))
        except Exception as e:
            reject("ListActions", e)

    def do_action(
        self, context: pyarrow.flight.ServerCallContext, action: pyarrow.flight.Action
    ) -> Iterable[Any]:
        try:
            with self._span(context):
                return guarded("DoAction", self.methods.do_action(context, action))
        except Exception as e:
            reject("DoAction", e)
