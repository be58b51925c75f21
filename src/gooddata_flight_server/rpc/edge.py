"""The RPC edge: the one middleware factory every call passes through.

pyarrow bundles the Python middleware of a call into one C++ middleware: all factories'
``start_call`` run in one entry into Python, and the per-call objects' ``sending_headers``,
``call_completed`` and destruction in one entry each. On gRPC's threads each entry may create and
destroy a Python thread state, which is most of what a small call costs (benchmarks/README.md). So
the edge factory does all the per-call work at the start (the availability gate, token
authentication, the in-flight count, the metrics clock, the call's span) and its per-call object,
the :class:`~gooddata_flight_server.rpc.call.CallInfo`, closes the call's books when it ends.

The keys handlers know stay as they were: ``"call_info"`` is that object; ``"call_finalizer"`` and
(with token authentication) ``"auth_token"`` are two tiny factories that hand out views of the
same call. Last comes the thread-state hold (``hold_thread_state``, see ``rpc._threadstate``): its
object keeps the thread's Python state from the call's first entry into Python to its last one,
the destruction of pyarrow's per-call middleware, which releases it.

Order matters: only the edge may refuse a call, before anything is taken; once it returns, pyarrow
is bound to end the call, which releases what the edge took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pyarrow.flight
import structlog
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.status import Status, StatusCode

from gooddata_flight_server.auth.middleware import AUTH_TOKEN_KEY, TokenAuthenticator, TokenAuthMiddleware
from gooddata_flight_server.errors.classify import outcome_of
from gooddata_flight_server.observability.metrics import RPC_METHOD_NAMES, RpcMetrics
from gooddata_flight_server.observability.tracing import Tracing
from gooddata_flight_server.rpc import _threadstate
from gooddata_flight_server.rpc.call import (
    CALL_FINALIZER_KEY,
    CALL_INFO_KEY,
    CallFinalizer,
    CallInfo,
    run_on_end,
)
from gooddata_flight_server.rpc.gate import Gate

__all__ = ["Edge", "middleware"]

log = structlog.get_logger(__name__)

_RPC_SERVICE = "arrow.flight.protocol.FlightService"
_STREAMING = frozenset({"DoGet", "DoExchange", "DoAction", "ListFlights", "ListActions"})
"""Calls whose answer streams after the handler returned: a client may cancel them midway."""


class _HeaderGetter(Getter[Mapping[str, Any]]):
    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        values = carrier.get(key.lower())
        return [v if isinstance(v, str) else v.decode("latin-1") for v in values] if values else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


class Edge(pyarrow.flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Admits (or refuses) every call and opens its books; :meth:`end` closes them."""

    def __init__(
        self,
        gate: Gate,
        authenticator: TokenAuthenticator | None = None,
        metrics: RpcMetrics | None = None,
        tracing: Tracing | None = None,
        *,
        extract_context: bool = False,
    ) -> None:
        super().__init__()
        self._gate = gate
        self._auth = authenticator
        self._metrics = metrics
        self._tracing = tracing if tracing is not None and tracing.enabled else None
        self._tracer: trace.Tracer | None = None
        self._extract = extract_context
        self._current = threading.local()  # the call whose start_calls run on this thread now

    def start_call(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> CallInfo:
        method = RPC_METHOD_NAMES.get(info.method, "")
        try:
            self._gate.admit()
        except pyarrow.flight.FlightError as e:
            self._count_refused(method, e)
            raise
        try:
            token_data = None if self._auth is None else self._auth.authenticate(info, headers)
        except pyarrow.flight.FlightError as e:
            self._gate.leave()
            self._count_refused(method, e)
            raise
        except BaseException:
            self._gate.leave()
            raise
        try:
            call = CallInfo(info, headers)
            call.method = method
            call._end = self.end
            if self._metrics is not None:
                call.started = time.perf_counter()
            if self._tracing is not None:  # a user's tracer provider or propagator may fail
                call.span = self._start_span(method, headers)
        except BaseException:
            self._gate.leave()
            raise
        # nothing below refuses the call: pyarrow will end it, and end() releases what it took
        self._current.call = call
        self._current.token = token_data
        return call

    def end(self, call: CallInfo, exception: BaseException | None) -> None:
        """The call ended: run its finalizers, record it, end its span, let the drain know."""
        if call.ended:
            return
        call.ended = True
        try:
            if call.on_end:
                run_on_end(call.on_end, exception)
            if self._metrics is not None:
                self._record(self._metrics, call, exception)
            if call.span is not None:
                _end_span(call.span, exception)
        finally:
            call.context = None
            self._gate.leave()

    def current(self) -> tuple[CallInfo, Any]:
        """The call (and its token data) whose middleware is being made on this thread."""
        return self._current.call, self._current.token

    # -- per-call work ----------------------------------------------------------------------------

    def _start_span(self, method: str, headers: Mapping[str, Any]) -> trace.Span:
        tracer = self._tracer
        if tracer is None:
            assert self._tracing is not None
            tracer = self._tracer = self._tracing.tracer("gooddata_flight_server")
        parent = propagate.extract(headers, getter=_GETTER) if self._extract else None
        return tracer.start_span(
            method,
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={
                "rpc.system": "apache_arrow_flight",
                "rpc.service": _RPC_SERVICE,
                "rpc.method": method,
            },
        )

    def _record(self, metrics: RpcMetrics, call: CallInfo, exception: BaseException | None) -> None:
        method = call.method
        if method not in metrics.latency:
            return
        context = call.context
        cancelled = exception is None and context is not None and context.is_cancelled()
        outcome = outcome_of(exception, cancelled)
        metrics.requests[method, outcome].inc()
        metrics.latency[method].observe(time.perf_counter() - call.started)
        sent = call.sent
        if call.sent_if_complete is not None and outcome == "ok":
            rows, nbytes = call.sent_if_complete
            sent = [rows + (sent[0] if sent else 0), nbytes + (sent[1] if sent else 0)]
        if sent is not None and method in metrics.sent_rows:
            metrics.sent_rows[method].inc(sent[0])
            metrics.sent_bytes[method].inc(sent[1])
        received = call.received
        if received is not None and method in metrics.received_rows:
            metrics.received_rows[method].inc(received[0])
            metrics.received_bytes[method].inc(received[1])
        if call.received_batches and method in metrics.received_batches:
            metrics.received_batches[method].inc(call.received_batches)

    def _count_refused(self, method: str, error: BaseException) -> None:
        metrics = self._metrics
        if metrics is not None and method in metrics.latency:
            metrics.requests[method, outcome_of(error)].inc()


def _end_span(span: trace.Span, exception: BaseException | None) -> None:
    if exception is not None:
        span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        span.set_attribute("error.type", type(exception).__name__)
    span.end()


class _FinalizerKey(pyarrow.flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """``"call_finalizer"``: a view of the call the edge just admitted on this thread."""

    def __init__(self, edge: Edge) -> None:
        super().__init__()
        self._edge = edge

    def start_call(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> CallFinalizer:
        call, _ = self._edge.current()
        return CallFinalizer(call.on_end)


class _AuthTokenKey(pyarrow.flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """``"auth_token"``: what the verification strategy said of the call's token."""

    def __init__(self, edge: Edge) -> None:
        super().__init__()
        self._edge = edge
        self._no_data = TokenAuthMiddleware(token_data=None)  # shared: it holds no call state

    def start_call(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> TokenAuthMiddleware:
        _, token_data = self._edge.current()
        return self._no_data if token_data is None else TokenAuthMiddleware(token_data=token_data)


class _Held(pyarrow.flight.ServerMiddleware):  # type: ignore[misc]
    """Holds the thread's Python state while pyarrow keeps the call's middleware, and releases it
    when pyarrow destroys them: the last time the call enters Python (``rpc._threadstate``).

    Only pyarrow's per-call wrapper refers to it (under a key no handler asks for), so it goes
    exactly when that wrapper goes; if anything kept it longer, the release would be deferred to
    its own thread by ``_threadstate.release``, never done on a wrong one.
    """

    __slots__ = ("_taken",)

    def __init__(self, taken: _threadstate.Hold) -> None:
        super().__init__()
        self._taken = taken

    def __del__(self) -> None:
        _threadstate.release(self._taken)


class _HoldKey(pyarrow.flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Registered last: runs once nothing can refuse the call any more."""

    def start_call(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> _Held:
        return _Held(_threadstate.hold())


_HOLD_KEY = "gdfs_thread_state_hold"


def middleware(
    edge: Edge, *, with_auth_token: bool, hold_thread_state: bool = True
) -> dict[str, pyarrow.flight.ServerMiddlewareFactory]:
    """The factories to register with pyarrow, in order: the edge first, then its views, then the
    thread-state hold (pyarrow calls them in this order; a dict keeps it)."""
    factories: dict[str, pyarrow.flight.ServerMiddlewareFactory] = {
        CALL_INFO_KEY: edge,
        CALL_FINALIZER_KEY: _FinalizerKey(edge),
    }
    if with_auth_token:
        factories[AUTH_TOKEN_KEY] = _AuthTokenKey(edge)
    if hold_thread_state:
        factories[_HOLD_KEY] = _HoldKey()
    return factories
