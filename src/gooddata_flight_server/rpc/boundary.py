"""The error boundary: what reaches a client when server-side code fails.

Flight errors pass as they are, ``NotImplementedError`` becomes NOT_IMPLEMENTED, anything else
INTERNAL with an ErrorInfo carrying a reference id, the traceback logged once under the same id:
clients never see a server traceback (pyarrow would otherwise format it into the status message).
The table of what becomes what is ``errors.classify``.

The boundary also covers what runs after a handler returned: pyarrow pulls the items of a result
iterator and the batches of a stream the server builds later, so a failure there needs the same
treatment. Streams a user builds as ``pyarrow.flight.GeneratorStream`` keep pyarrow's own handling:
pyarrow does not expose their source, so it cannot be guarded from here.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

import pyarrow
import pyarrow.flight
import structlog
from opentelemetry import trace

from gooddata_flight_server.errors.classify import for_client
from gooddata_flight_server.rpc.call import CallInfo

__all__ = ["counted_batches", "guarded", "guarded_stream", "reject"]

log = structlog.get_logger(__name__)

Count = Callable[[int, int], None]


def reject(method: str, error: Exception) -> NoReturn:
    """Raise what the client may see of ``error`` (see ``errors.classify``); what is hidden from
    the client is logged here, once, with its traceback and the reference id the client got."""
    answer, ref = for_client(method, error)
    if answer is error:
        raise error
    if ref is not None:
        log.error("rpc_unexpected_error", rpc=method, error_ref=ref, exc_info=error)
    raise answer from None


def guarded(method: str, items: Iterable[Any], call: CallInfo | None) -> Iterable[Any]:
    """Keep the boundary (and the call's span) around results that run code while pyarrow iterates."""
    if isinstance(items, (list, tuple)):
        return items
    return _guard_iter(method, iter(items), None if call is None else call.span)


def _guard_iter(method: str, items: Iterator[Any], span: trace.Span | None) -> Iterator[Any]:
    # pyarrow pulls each item after the handler returned: each pull runs in a copy of the handler's
    # context (what the handler bound stays visible) with the call's span made current again, so
    # spans and log lines of the code behind it join the call
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


def counted_batches(batches: Iterable[Any], count: Count) -> Iterator[Any]:
    """Yield the batches (or tables) of a stream, counting each from its metadata (no copy)."""
    for item in batches:
        data = item[0] if isinstance(item, tuple) else item
        if isinstance(data, (pyarrow.RecordBatch, pyarrow.Table)):
            count(data.num_rows, data.nbytes)
        yield item


def guarded_stream(
    schema: pyarrow.Schema, batches: Iterable[Any], call: CallInfo | None, method: str = "DoGet"
) -> pyarrow.flight.FlightDataStream:
    """A stream of batches (a RecordBatchReader, or any iterable of batches) behind the boundary,
    counted into the call's books when they are kept."""
    if call is not None and call.started:
        batches = counted_batches(batches, call.count_sent)
    span = None if call is None else call.span
    return pyarrow.flight.GeneratorStream(schema, _guard_iter(method, iter(batches), span))
