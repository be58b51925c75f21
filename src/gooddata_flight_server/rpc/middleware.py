"""Middleware every call passes through: the availability gate, call info and call finalizers.

pyarrow calls a factory's ``start_call`` on the RPC thread before the handler runs; a factory that
raises rejects the call with that error, which is how the availability gate answers NOT_READY and
SHUTTING_DOWN without any RPC method running.
"""

from __future__ import annotations

import ctypes
import enum
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow.flight
import structlog

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.errors.classify import outcome_of
from gooddata_flight_server.observability.metrics import RPC_METHOD_NAMES, RpcMetrics

__all__ = [
    "CALL_FINALIZER_KEY",
    "CALL_INFO_KEY",
    "Availability",
    "AvailabilityGate",
    "CallFinalizer",
    "CallFinalizerFactory",
    "CallInfo",
    "CallInfoFactory",
    "CountingRejections",
    "InFlightCalls",
]

log = structlog.get_logger(__name__)

CALL_INFO_KEY = "call_info"
CALL_FINALIZER_KEY = "call_finalizer"

OnEnd = Callable[[BaseException | None], None]

_gil_ensure = ctypes.pythonapi.PyGILState_Ensure
_gil_ensure.argtypes = []
_gil_ensure.restype = ctypes.c_int
_gil_release = ctypes.pythonapi.PyGILState_Release
_gil_release.argtypes = [ctypes.c_int]
_gil_release.restype = None


class Availability(enum.Enum):
    NOT_READY = "not_ready"
    SERVING = "serving"
    SHUTTING_DOWN = "shutting_down"


class AvailabilityGate(pyarrow.flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Rejects calls with a retryable UNAVAILABLE until the server serves, and again once it drains.

    While serving, ``start_call`` returns ``None``: no per-call object, so the open gate costs one
    attribute read per call.
    """

    def __init__(self) -> None:
        super().__init__()
        self.state = Availability.NOT_READY
        self.refused_while_draining = 0  # approximate (unlocked): only "any or none" matters

    def start_call(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> None:
        state = self.state
        if state is Availability.SERVING:
            return None
        if state is Availability.NOT_READY:
            raise ErrorInfo.for_reason(
                ErrorCode.NOT_READY, "The server is starting up and not ready to serve yet; retry shortly."
            ).to_unavailable_error()
        self.refused_while_draining += 1
        raise ErrorInfo.for_reason(
            ErrorCode.SHUTTING_DOWN, "The server is shutting down; retry on another server."
        ).to_unavailable_error()


class CallInfo(pyarrow.flight.ServerMiddleware):  # type: ignore[misc]
    """What pyarrow knows of the current call, reachable from handlers under the key ``"call_info"``."""

    __slots__ = ("_headers", "_info")

    MiddlewareName = CALL_INFO_KEY  # the original package's name for the key

    def __init__(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> None:
        super().__init__()
        self._info = info
        self._headers = headers

    @property
    def info(self) -> pyarrow.flight.CallInfo:
        """The pyarrow CallInfo: ``info.method`` is the FlightMethod being called."""
        return self._info

    @property
    def headers(self) -> dict[str, list[Any]]:
        """Request headers; keys are lowercase, values are lists (str, or bytes for ``-bin`` headers)."""
        return self._headers


class CallInfoFactory(pyarrow.flight.ServerMiddlewareFactory):  # type: ignore[misc]
    def start_call(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> CallInfo:
        return CallInfo(info, headers)


class InFlightCalls:
    """Counts calls between their start and their end, so a drain knows when the last one ended.

    gRPC's own shutdown would refuse new calls without an ErrorInfo; draining on this count first
    lets the gate answer SHUTTING_DOWN for as long as calls are still finishing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._on_idle: Callable[[], None] | None = None

    @property
    def count(self) -> int:
        return self._count

    def enter(self) -> None:
        with self._lock:
            self._count += 1

    def exit(self) -> None:
        with self._lock:
            self._count -= 1
            if self._count or self._on_idle is None:
                return
            on_idle, self._on_idle = self._on_idle, None
        on_idle()

    def notify_when_idle(self, on_idle: Callable[[], None]) -> None:
        """Call ``on_idle`` once no call is in flight: now, or when the last one ends."""
        with self._lock:
            if self._count:
                self._on_idle = on_idle
                return
        on_idle()


class CountingRejections(pyarrow.flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Counts the calls a middleware (the gate, authentication) rejects.

    A rejected call never reaches the finalizer that counts every other call: pyarrow stops at the
    first middleware that raises and ends none of those that came before.
    """

    def __init__(self, inner: pyarrow.flight.ServerMiddlewareFactory, metrics: RpcMetrics) -> None:
        super().__init__()
        self._inner = inner
        self._metrics = metrics

    def start_call(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> Any:
        try:
            return self._inner.start_call(info, headers)
        except pyarrow.flight.FlightError as e:
            method = RPC_METHOD_NAMES.get(info.method)
            if method is not None:
                self._metrics.requests[method, outcome_of(e)].inc()
            raise


class CallFinalizer(pyarrow.flight.ServerMiddleware):  # type: ignore[misc]
    """Runs registered functions when the call ends, however it ends (key ``"call_finalizer"``).

    A DoGet call ends when its stream has been sent, not when ``do_get`` returns; this is the place
    to release what the stream needed. Every function runs even if an earlier one fails.

    It also closes the call's books: the in-flight count and, when metrics are on, the call's
    outcome, duration and the Arrow data it moved (set by the RPC handlers through
    :meth:`count_sent` and :meth:`count_received`).
    """

    __slots__ = (
        "_held",
        "_in_flight",
        "_method",
        "_metrics",
        "_on_end",
        "_started",
        "received",
        "sent",
        "sent_if_complete",
        "server_context",
    )

    MiddlewareName = CALL_FINALIZER_KEY  # the original package's name for the key

    def __init__(
        self, in_flight: InFlightCalls | None = None, metrics: RpcMetrics | None = None, method: str = ""
    ) -> None:
        super().__init__()
        self._in_flight = in_flight
        self._metrics = metrics
        self._method = method
        self._started = time.perf_counter() if metrics is not None else 0.0
        self._on_end: list[OnEnd] = []
        self._held: tuple[int, int] | None = None
        self.server_context: pyarrow.flight.ServerCallContext | None = None
        self.sent: tuple[int, int] | None = None
        self.sent_if_complete: tuple[int, int] | None = None
        self.received: tuple[int, int] | None = None

    def register_on_end(self, fun: OnEnd) -> None:
        self._on_end.append(fun)

    def count_sent(self, rows: int, nbytes: int, once_complete: bool = False) -> None:
        """Arrow data this call sent; recorded when the call ends.

        ``once_complete``: the data is counted before it streams (a whole Table), so it is recorded
        only if the call completes; a cancelled or failed stream sent an unknown part of it.
        """
        if once_complete:
            self.sent_if_complete = (rows, nbytes)
            return
        previous = self.sent or (0, 0)
        self.sent = (previous[0] + rows, previous[1] + nbytes)

    def count_received(self, rows: int, nbytes: int) -> None:
        """Arrow data this call received; recorded when the call ends."""
        previous = self.received or (0, 0)
        self.received = (previous[0] + rows, previous[1] + nbytes)

    def hold_thread_state(self) -> None:
        """Keep this gRPC thread's Python thread state until the call ends.

        pyarrow enters Python around every callback of a call (each middleware, the handler,
        ``call_completed``) with ``PyGILState_Ensure``/``Release``; gRPC's threads have no thread
        state of their own, so each callback would create one and destroy it again, and the first
        frame of each new state maps a fresh frame stack (``mmap``/``munmap``). Holding one extra
        ``PyGILState_Ensure`` from the last middleware's ``start_call`` to ``call_completed`` lets
        the callbacks of one call share a thread state (measured in benchmarks/README.md). It is
        released when the call ends: gRPC retires its threads, so a state kept for good would leak.
        """
        self._held = (_gil_ensure(), threading.get_native_id())

    def call_completed(self, exception: BaseException | None) -> None:
        try:
            for fun in self._on_end:
                try:
                    fun(exception)
                except Exception:
                    log.exception("call_finalizer_failed", finalizer=getattr(fun, "__qualname__", repr(fun)))
            if self._metrics is not None:
                self._record(self._metrics, exception)
        finally:
            self.server_context = None
            if self._in_flight is not None:
                self._in_flight.exit()
            held, self._held = self._held, None
            # released only on the thread that took it (pyarrow ends a call on its own thread)
            if held is not None and held[1] == threading.get_native_id():
                _gil_release(held[0])

    def _record(self, metrics: RpcMetrics, exception: BaseException | None) -> None:
        method = self._method
        if method not in metrics.latency:
            return
        context = self.server_context
        cancelled = exception is None and context is not None and context.is_cancelled()
        outcome = outcome_of(exception, cancelled)
        metrics.requests[method, outcome].inc()
        metrics.latency[method].observe(time.perf_counter() - self._started)
        if self.sent_if_complete is not None and outcome == "ok":
            self.count_sent(*self.sent_if_complete)
        if self.sent is not None and method in metrics.sent_rows:
            metrics.sent_rows[method].inc(self.sent[0])
            metrics.sent_bytes[method].inc(self.sent[1])
        if self.received is not None and method in metrics.received_rows:
            metrics.received_rows[method].inc(self.received[0])
            metrics.received_bytes[method].inc(self.received[1])


class CallFinalizerFactory(pyarrow.flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Registered last, so that no later middleware can reject a call that was already counted."""

    def __init__(self, in_flight: InFlightCalls, metrics: RpcMetrics | None = None) -> None:
        super().__init__()
        self._in_flight = in_flight
        self._metrics = metrics

    def start_call(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> CallFinalizer:
        self._in_flight.enter()
        if self._metrics is None:
            finalizer = CallFinalizer(self._in_flight)
        else:
            finalizer = CallFinalizer(self._in_flight, self._metrics, RPC_METHOD_NAMES.get(info.method, ""))
        finalizer.hold_thread_state()
        return finalizer
