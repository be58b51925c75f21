"""What the server knows of one call, reachable from handlers through the call's context.

``context.get_middleware("call_info")`` is the :class:`CallInfo` of the call: the method and
request headers, and the call's books (when it started, the data it moved, its span, what runs when
it ends). ``context.get_middleware("call_finalizer")`` is a :class:`CallFinalizer` to register code
that runs when the call ends; ``context.get_middleware("auth_token")`` (with token authentication
on) holds what the verification strategy returned. All three are made by the one middleware factory
of the RPC edge (``rpc.edge``), so that pyarrow enters Python as few times per call as it can.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow.flight
import structlog

__all__ = ["CALL_FINALIZER_KEY", "CALL_INFO_KEY", "CallFinalizer", "CallInfo", "OnEnd", "run_on_end"]

log = structlog.get_logger(__name__)

CALL_INFO_KEY = "call_info"
CALL_FINALIZER_KEY = "call_finalizer"

OnEnd = Callable[[BaseException | None], None]


def run_on_end(functions: list[OnEnd], exception: BaseException | None) -> None:
    """Run every registered function, each even if an earlier one failed (failures are logged)."""
    for fun in functions:
        try:
            fun(exception)
        except Exception:
            log.exception("call_finalizer_failed", finalizer=getattr(fun, "__qualname__", repr(fun)))


class CallInfo(pyarrow.flight.ServerMiddleware):  # type: ignore[misc]
    """What pyarrow knows of the current call (key ``"call_info"``), and the call's books.

    ``info.method`` is the FlightMethod being called; ``headers`` the request headers (keys
    lowercase, values lists of str, or bytes for ``-bin`` headers). The edge middleware makes one
    per call and ends it (see ``rpc.edge``); the other attributes are the server's.
    """

    __slots__ = (
        "_end",
        "_headers",
        "_info",
        "context",
        "ended",
        "method",
        "on_end",
        "received",
        "received_batches",
        "sent",
        "sent_if_complete",
        "span",
        "started",
    )

    MiddlewareName = CALL_INFO_KEY  # the original package's name for the key

    def __init__(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> None:
        super().__init__()
        self._info = info
        self._headers = headers
        self.method = ""  # the Flight method's name (GetFlightInfo ...), set by the edge
        self.started = 0.0  # time.perf_counter() at the start, when metrics are on
        self.on_end: list[OnEnd] = []
        self.span: Any = None  # the call's SERVER span, when tracing is on
        self.context: pyarrow.flight.ServerCallContext | None = None  # of a streaming call, to tell a cancel
        self.sent: list[int] | None = None  # [rows, bytes] the server streamed, when counted
        self.sent_if_complete: tuple[int, int] | None = None  # a Table: counted only if sent in full
        self.received: list[int] | None = None  # [rows, bytes] the server read from the client itself
        self.received_batches = 0  # record batches the service read from the client (DoPut, DoExchange)
        self.ended = False
        self._end: Callable[[CallInfo, BaseException | None], None] | None = None

    def call_completed(self, exception: BaseException | None) -> None:
        """pyarrow: the call ended (its stream was sent, or it failed, or the client went away)."""
        end = self._end
        if end is not None:
            end(self, exception)

    @property
    def info(self) -> pyarrow.flight.CallInfo:
        """The pyarrow CallInfo: ``info.method`` is the FlightMethod being called."""
        return self._info

    @property
    def headers(self) -> dict[str, list[Any]]:
        """Request headers; keys are lowercase, values are lists (str, or bytes for ``-bin`` headers)."""
        return self._headers

    def count_sent(self, rows: int, nbytes: int) -> None:
        """Arrow data the server streamed to the client; recorded when the call ends."""
        sent = self.sent
        if sent is None:
            self.sent = [rows, nbytes]
        else:
            sent[0] += rows
            sent[1] += nbytes

    def count_received(self, rows: int, nbytes: int) -> None:
        """Arrow data the server read from the client; recorded when the call ends."""
        received = self.received
        if received is None:
            self.received = [rows, nbytes]
        else:
            received[0] += rows
            received[1] += nbytes


class CallFinalizer(pyarrow.flight.ServerMiddleware):  # type: ignore[misc]
    """Runs registered functions when the call ends, however it ends (key ``"call_finalizer"``).

    A DoGet call ends when its stream has been sent, not when ``do_get`` returns; this is the place
    to release what the stream needed. Every function runs even if an earlier one fails.

    Built by the server for each call, sharing the call's list of functions (the server runs them
    when the call ends). Built on its own (``CallFinalizer()``), it keeps a list of its own, run by
    :meth:`run` or, as in the original package, by ``call_completed``.
    """

    __slots__ = ("_on_end", "_owned")

    MiddlewareName = CALL_FINALIZER_KEY  # the original package's name for the key

    def __init__(self, on_end: list[OnEnd] | None = None) -> None:
        super().__init__()
        self._owned = on_end is None
        self._on_end = [] if on_end is None else on_end

    def register_on_end(self, fun: OnEnd) -> None:
        self._on_end.append(fun)

    def call_completed(self, exception: BaseException | None) -> None:
        if self._owned:  # a view of a server's call leaves it to the call's own end
            self.run(exception)

    def run(self, exception: BaseException | None = None) -> None:
        """Run the registered functions now (the server does it when the call ends)."""
        functions, self._on_end[:] = list(self._on_end), []
        run_on_end(functions, exception)
