"""The one table of how the server treats an exception: what the client gets, how it is counted.

Every place that turns an exception into something else asks here: the RPC error boundary (what a
client may see), the per-call metrics (the ``outcome`` label), the task executor (the ErrorInfo of
a failed task) and token authentication (the reason of a rejection).

=================================  ==========================  ===============  ==================
raised                             the client gets             ``outcome``      a task's ErrorInfo
=================================  ==========================  ===============  ==================
``FlightError`` with ErrorInfo     as raised                   by its code [1]  as raised
``FlightError`` without            as raised                   by its class     UNKNOWN placeholder
``UnimplementedStatus``            gRPC UNIMPLEMENTED [2]      not_implemented  (not for tasks)
``NotImplementedError``            NOT_IMPLEMENTED [3]         not_implemented  COMMAND_FAILED
``ValueError`` (in a task)         --                          --               BAD_ARGUMENT
anything else                      INTERNAL_ERROR + reference  internal         COMMAND_FAILED
=================================  ==========================  ===============  ==================

[1] a FlightServerError whose code blames the request is ``bad_request``; COMMAND_CANCELLED is
``cancelled``, TIMEOUT ``timed_out``; other codes keep the outcome of the error's class.
[2] pyarrow sends only ``NotImplementedError`` with that status, and always adds its traceback text
of the frames the error passed through: only for clients that act on the status (Flight SQL's
ADBC driver falls back to unprepared statements on it).
[3] ``FlightServerError`` with ErrorInfo NOT_IMPLEMENTED: no traceback text reaches the client,
at the price of the gRPC status (pyarrow cannot send UNIMPLEMENTED without one).

GetSchema is the exception: pyarrow's GetSchema callback turns *every* error into UNKNOWN with its
traceback text (apache/arrow#43556), Flight errors included. There a ``NotImplementedError`` stays
one (the client at least gets the status UNIMPLEMENTED), and a Flight error is raised afresh so
that no frame of the code that raised it is part of that text.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import pyarrow.flight

from gooddata_flight_server.errors.error_code import CODE_MASK, ErrorCode
from gooddata_flight_server.errors.error_info import ErrorInfo

__all__ = [
    "AUTH_FAILURE_REASONS",
    "OUTCOMES",
    "UnimplementedStatus",
    "auth_rejection_reason",
    "for_client",
    "internal_error",
    "not_implemented",
    "outcome_of",
    "task_error_info",
]

OUTCOMES: Final = (
    "ok",
    "cancelled",  # the client went away, or the work was cancelled (COMMAND_CANCELLED)
    "bad_request",  # FlightServerError whose ErrorInfo blames the request (bad argument, invalid ticket ...)
    "server_error",  # any other FlightServerError the service sent back
    "unauthenticated",
    "unauthorized",
    "unavailable",  # NOT_READY, SHUTTING_DOWN, BACKPRESSURE ...
    "timed_out",
    "poll",  # the polling protocol's "not ready yet, retry": a normal answer, not a failure
    "not_implemented",
    "internal",
    "error",  # anything else
)
"""The ``outcome`` label values of ``gdfs_rpc_requests_total``."""


AUTH_FAILURE_REASONS = (
    "missing_token",  # no token header at all
    "duplicate_header",  # the token header sent more than once
    "wrong_scheme",  # Authorization is not "Bearer <token>"
    "empty_token",  # the header is there but the token is blank
    "malformed_header",  # a binary (-bin) header whose value is not UTF-8
    "invalid_token",  # the strategy raised FlightUnauthenticatedError
    "forbidden",  # the strategy raised FlightUnauthorizedError
    "strategy_error",  # the strategy raised anything else
)
"""Every reason code of the ``auth_failed`` event and the ``gdfs_auth_failures_total`` counter."""


class UnimplementedStatus(NotImplementedError):
    """Raise it to answer with the gRPC status UNIMPLEMENTED itself, for clients that act on it.

    pyarrow adds its traceback text (of the frames the error passed through) to that answer and
    cannot attach an ErrorInfo; a plain ``NotImplementedError`` answers NOT_IMPLEMENTED in an
    ErrorInfo instead, without any traceback.
    """


# the outcome of a Flight error of each class; subclasses before their bases
_OUTCOME_OF_CLASS: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (pyarrow.flight.FlightCancelledError, "cancelled"),
    (pyarrow.flight.FlightUnauthenticatedError, "unauthenticated"),
    (pyarrow.flight.FlightUnauthorizedError, "unauthorized"),
    (pyarrow.flight.FlightUnavailableError, "unavailable"),
    (pyarrow.flight.FlightTimedOutError, "timed_out"),
    (pyarrow.flight.FlightInternalError, "internal"),
    (pyarrow.flight.FlightServerError, "server_error"),
    (NotImplementedError, "not_implemented"),
)

# ErrorInfo codes (without retry flags) that say more than a FlightServerError's class does
_OUTCOME_OF_CODE: Final[Mapping[int, str]] = MappingProxyType(
    {
        ErrorCode.BAD_ARGUMENT: "bad_request",
        ErrorCode.BAD_REQUEST: "bad_request",
        ErrorCode.UNSUPPORTED_SERVICE: "bad_request",
        ErrorCode.INVALID_TICKET: "bad_request",
        ErrorCode.COMMAND_RESULT_CONSUMED: "bad_request",
        ErrorCode.COMMAND_CANCELLED: "cancelled",
        ErrorCode.TIMEOUT & CODE_MASK: "timed_out",
        ErrorCode.NOT_IMPLEMENTED: "not_implemented",
    }
)


def outcome_of(exception: BaseException | None, cancelled: bool = False) -> str:
    """The ``outcome`` label of a call that ended with ``exception`` (None: without an error;
    ``cancelled``: the client went away while it was being answered)."""
    if exception is None:
        return "cancelled" if cancelled else "ok"
    for kind, label in _OUTCOME_OF_CLASS:
        if isinstance(exception, kind):
            if label in ("server_error", "timed_out"):
                info = ErrorInfo.maybe_from_pyarrow_error(exception)
                if info is not None and label == "server_error":
                    return _OUTCOME_OF_CODE.get(info.code & CODE_MASK, label)
                if info is not None and info.code & CODE_MASK == ErrorCode.POLL & CODE_MASK:
                    return "poll"
            return label
    return "error"


def not_implemented(what: str) -> pyarrow.flight.FlightServerError:
    """The answer to an RPC (or part of one) that the service does not implement."""
    return ErrorInfo.for_reason(ErrorCode.NOT_IMPLEMENTED, what).to_server_error()


def internal_error(method: str) -> tuple[pyarrow.flight.FlightInternalError, str]:
    """INTERNAL with a fresh reference id, and the id (to log with the traceback)."""
    ref = uuid.uuid4().hex
    error = ErrorInfo.for_reason(
        ErrorCode.INTERNAL_ERROR,
        f"{method} failed with an unexpected error on the server. Reference: {ref}",
    ).to_internal_error()
    return error, ref


def for_client(method: str, error: BaseException) -> tuple[BaseException, str | None]:
    """What a client may see of ``error`` raised by ``method``'s server-side code, and the reference
    id to log the original under when it is hidden (None when the client sees it as it is)."""
    if method == "GetSchema":
        if isinstance(error, pyarrow.flight.FlightError):
            return type(error)(str(error), error.extra_info), None
        if isinstance(error, NotImplementedError):
            return NotImplementedError(str(error) or "GetSchema is not implemented by this service."), None
    if isinstance(error, pyarrow.flight.FlightError):
        return error, None
    if isinstance(error, UnimplementedStatus):
        # a fresh exception: the frames of the code that raised it stay out of pyarrow's text
        return NotImplementedError(str(error)), None
    if isinstance(error, NotImplementedError):
        return not_implemented(str(error) or f"{method} is not implemented by this service."), None
    return internal_error(method)


def task_error_info(e: Exception) -> tuple[ErrorInfo, type[pyarrow.flight.FlightError], bool]:
    """The ErrorInfo, Flight error class and client-fault flag of a task that raised ``e``.

    Tracebacks never go into the ErrorInfo (they are for the server log).
    """
    if isinstance(e, pyarrow.flight.FlightError):
        # sent as it is; one without ErrorInfo gets the UNKNOWN placeholder, as in the original
        return ErrorInfo.from_pyarrow_error(e), type(e), False
    if isinstance(e, ValueError):
        return ErrorInfo.for_reason(ErrorCode.BAD_ARGUMENT, str(e)), pyarrow.flight.FlightServerError, True
    if isinstance(e, OSError) and (e.filename is not None or e.filename2 is not None):
        # the file an OS error names is the server's business: the client gets the reason only
        text = f"[Errno {e.errno}] {e.strerror}" if e.strerror else type(e).__name__
        info = ErrorInfo.for_reason(ErrorCode.COMMAND_FAILED, f"{_TASK_FAILED}: {text}")
    else:
        info = ErrorInfo.for_exc(ErrorCode.COMMAND_FAILED, e, extra_msg=_TASK_FAILED, include_traceback=False)
    return info, pyarrow.flight.FlightServerError, False


_TASK_FAILED: Final = "There was an error while running task"  # the original package's words


def auth_rejection_reason(error: BaseException) -> str | None:
    """The reason code of a token a strategy refused by raising ``error``; None when the strategy
    itself failed (an unexpected exception: INTERNAL for the client)."""
    if isinstance(error, pyarrow.flight.FlightUnauthenticatedError):
        return "invalid_token"
    if isinstance(error, pyarrow.flight.FlightUnauthorizedError):
        return "forbidden"
    if isinstance(error, pyarrow.flight.FlightError):  # e.g. UNAVAILABLE when its backend is down
        return "strategy_error"
    return None
