"""The error boundary: what reaches a client when server-side code fails.

Flight errors and ``NotImplementedError`` pass as they are. Anything else becomes INTERNAL with an
ErrorInfo carrying a reference id, and the traceback is logged once under the same id: clients
never see a server traceback (pyarrow would otherwise format it into the status message).

The boundary also covers data streams the server builds: pyarrow pulls their batches after the
handler returned, so a failure while streaming needs the same treatment. Streams a user builds
as ``pyarrow.flight.GeneratorStream`` keep pyarrow's own handling: pyarrow does not expose their
source, so it cannot be guarded from here.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

import pyarrow
import pyarrow.flight
import structlog
from opentelemetry import trace

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.observability.tracing import SPAN_MIDDLEWARE_KEY

__all__ = ["call_span", "guarded", "guarded_stream", "reject"]

log = structlog.get_logger(__name__)


def reject(method: str, error: Exception) -> NoReturn:
    """Re-raise what clients may see; replace anything else with INTERNAL and a reference id."""
    if isinstance(error, pyarrow.flight.FlightError):
        raise error
    if isinstance(error, NotImplementedError):
        # a fresh exception: the user's frames must not end up in the status pyarrow formats
        raise NotImplementedError(str(error)) from None
    ref = uuid.uuid4().hex
    log.error("rpc_unexpected_error", rpc=method, error_ref=ref, exc_info=error)
    raise ErrorInfo.for_reason(
        ErrorCode.INTERNAL_ERROR,
        f"{method} failed with an unexpected error on the server. Reference: {ref}",
    ).to_internal_error() from None


def call_span(context: pyarrow.flight.ServerCallContext) -> trace.Span | None:
    """The call's SERVER span when tracing is on (see the tracing middleware), else None."""
    middleware = context.get_middleware(SPAN_MIDDLEWARE_KEY)
    return None if middleware is None else middleware.span


def guarded(method: str, items: Iterable[Any], context: pyarrow.flight.ServerCallContext) -> Iterable[Any]:
    """Keep the boundary (and the call's span) around results that run code while pyarrow iterates."""
    if isinstance(items, (list, tuple)):
        return items
    return _guard_iter(method, iter(items), call_span(context))


def _guard_iter(method: str, items: Iterator[Any], span: trace.Span | None) -> Iterator[Any]:
    # pyarrow pulls each item after the handler returned, each time on a fresh thread state: each
    # pull runs in a copy of the handler's context (what the handler bound stays visible) with the
    # call's span made current again, so spans and log lines of the code behind it join the call
    context = contextvars.copy_context()
    try:
        while True:
            try:
                item = context.run(_next, items, span)
            except StopIteration:
                return
            yield item
    except Exception as e:
        if span is None:
            reject(method, e)
        with trace.use_span(span, end_on_exit=False):
            reject(method, e)


def _next(items: Iterator[Any], span: trace.Span | None) -> Any:
    if span is None:
        return next(items)
    with trace.use_span(span, end_on_exit=False):
        return next(items)


def guarded_stream(
    schema: pyarrow.Schema,
    batches: Iterable[Any],
    context: pyarrow.flight.ServerCallContext,
    method: str = "DoGet",
) -> pyarrow.flight.FlightDataStream:
    """A stream of batches (a RecordBatchReader, or any iterable of batches) behind the boundary."""
    return pyarrow.flight.GeneratorStream(schema, _guard_iter(method, iter(batches), call_span(context)))
