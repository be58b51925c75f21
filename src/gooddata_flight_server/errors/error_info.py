"""The structured error payload that travels with every Flight error.

Flight errors carry only a message and an opaque ``extra_info`` byte string to the client. Clients of
this server need more than a sentence to react correctly (is it worth retrying? where? is this a
poll?), so every error the server raises carries an :class:`ErrorInfo` serialised as JSON in
``extra_info``. The JSON shape is part of the wire contract with clients written in any language.
"""

from __future__ import annotations

import base64
import binascii
import traceback
from collections.abc import Callable
from typing import Any, Final, TypeAlias

import orjson
import pyarrow.flight

from gooddata_flight_server.errors.error_code import ErrorCode

__all__ = ["ErrorFactory", "ErrorInfo", "RetryInfo"]

ErrorFactory: TypeAlias = Callable[[str, bytes], pyarrow.flight.FlightError]
"""Anything that builds a Flight exception from a message and ``extra_info`` bytes; the pyarrow
exception classes themselves fit."""

_TRUNCATED_SUFFIX: Final = " [truncated]"
_MAX_MSG_LEN: Final = 256
_MAX_DETAIL_LEN: Final = 512
_NO_ERROR_INFO: Final = "Call failed with error that does not contain ErrorInfo."


def _truncate(value: str, limit: int) -> str:
    # the first `limit` characters are kept and the suffix says that more was cut off
    if len(value) <= limit:
        return value
    return value[:limit] + _TRUNCATED_SUFFIX


def _b64encode(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def _as_body(body: bytes | str | None) -> bytes | None:
    if body is None:
        return None
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _b64decode(what: str, value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a base64 string or null, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise ValueError(f"{what}: not valid base64: {e}") from None


def _parse_json_object(what: str, data: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{what}: not valid UTF-8 JSON: {e}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(parsed).__name__}")
    return parsed


class RetryInfo:
    """What a client needs to come back later for a result that is not ready yet.

    Sent as the body of a ``POLL`` error: the client retries with ``retry_descriptor`` (or can cancel
    with ``cancel_descriptor``); ``flight_info`` may describe the partial or final result.
    """

    __slots__ = ("_cancel_descriptor", "_flight_info", "_retry_descriptor")

    def __init__(
        self,
        flight_info: pyarrow.flight.FlightInfo | None = None,
        retry_descriptor: pyarrow.flight.FlightDescriptor | None = None,
        cancel_descriptor: pyarrow.flight.FlightDescriptor | None = None,
    ) -> None:
        self._flight_info = flight_info
        self._retry_descriptor = retry_descriptor
        self._cancel_descriptor = cancel_descriptor

    @property
    def flight_info(self) -> pyarrow.flight.FlightInfo | None:
        return self._flight_info

    @property
    def retry_descriptor(self) -> pyarrow.flight.FlightDescriptor | None:
        return self._retry_descriptor

    @property
    def cancel_descriptor(self) -> pyarrow.flight.FlightDescriptor | None:
        return self._cancel_descriptor

    def to_bytes(self) -> bytes:
        """Each field is the base64 of its Flight protobuf serialisation so any Flight client library
        can decode it, not only pyarrow."""

        def encode(value: Any) -> str | None:
            return None if value is None else _b64encode(value.serialize())

        return orjson.dumps(
            {
                "flight_info": encode(self._flight_info),
                "retry_descriptor": encode(self._retry_descriptor),
                "cancel_descriptor": encode(self._cancel_descriptor),
            }
        )

    @staticmethod
    def from_bytes(val: bytes) -> RetryInfo:
        """Missing keys are treated as null so older or leaner servers stay readable."""
        obj = _parse_json_object("RetryInfo", val)

        def decode(key: str, deserialize: Callable[[bytes], Any]) -> Any:
            raw = _b64decode(f"RetryInfo.{key}", obj.get(key))
            if raw is None:
                return None
            try:
                return deserialize(raw)
            except Exception as e:
                raise ValueError(f"RetryInfo.{key}: cannot deserialise: {e}") from None

        return RetryInfo(
            flight_info=decode("flight_info", pyarrow.flight.FlightInfo.deserialize),
            retry_descriptor=decode("retry_descriptor", pyarrow.flight.FlightDescriptor.deserialize),
            cancel_descriptor=decode("cancel_descriptor", pyarrow.flight.FlightDescriptor.deserialize),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetryInfo):
            return NotImplemented
        return (
            self._flight_info == other._flight_info
            and self._retry_descriptor == other._retry_descriptor
            and self._cancel_descriptor == other._cancel_descriptor
        )

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return (
            f"RetryInfo(flight_info={self._flight_info!r}, retry_descriptor={self._retry_descriptor!r}, "
            f"cancel_descriptor={self._cancel_descriptor!r})"
        )


class ErrorInfo:
    """Structured description of an error, carried to the client in ``FlightError.extra_info``.

    The ``with_*`` methods update the instance and return it, for call chaining. ``msg`` and
    ``detail`` are capped at ``MAX_MSG_LEN`` and ``MAX_DETAIL_LEN`` characters (a longer value keeps
    that many and gets a ``" [truncated]"`` suffix) because the payload travels in gRPC trailers,
    which are limited to 16 KiB in total. ``body`` is not capped: keep it small.
    """

    MAX_MSG_LEN: Final = _MAX_MSG_LEN
    MAX_DETAIL_LEN: Final = _MAX_DETAIL_LEN

    __slots__ = ("_body", "_code", "_detail", "_msg")

    def __init__(
        self,
        msg: str,
        detail: str | None = None,
        body: bytes | str | None = None,
        code: int = 0,
    ) -> None:
        self._msg = _truncate(msg, _MAX_MSG_LEN)
        self._detail = None if detail is None else _truncate(detail, _MAX_DETAIL_LEN)
        self._body = _as_body(body)
        self._code = code

    @property
    def msg(self) -> str:
        return self._msg

    @property
    def detail(self) -> str | None:
        return self._detail

    @property
    def body(self) -> bytes | None:
        return self._body

    @property
    def code(self) -> int:
        return self._code

    # -- wire format --------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "msg": self._msg,
                "detail": self._detail,
                "code": self._code,
                "body": _b64encode(self._body),
            }
        )

    @staticmethod
    def from_bytes(val: bytes) -> ErrorInfo:
        """Only ``msg`` is required; the other keys default so payloads from leaner peers parse."""
        obj = _parse_json_object("ErrorInfo", val)
        msg = obj.get("msg")
        if not isinstance(msg, str):
            problem = "missing" if msg is None else f"a {type(msg).__name__}"
            raise ValueError(f"ErrorInfo.msg: expected a string, got {problem}")
        detail = obj.get("detail")
        if detail is not None and not isinstance(detail, str):
            raise ValueError(f"ErrorInfo.detail: expected a string or null, got {type(detail).__name__}")
        code = obj.get("code", ErrorCode.UNKNOWN)
        if code is None:
            code = ErrorCode.UNKNOWN
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError(f"ErrorInfo.code: expected an integer, got {type(code).__name__}")
        body = _b64decode("ErrorInfo.body", obj.get("body"))
        return ErrorInfo(msg=msg, detail=detail, body=body, code=code)

    @staticmethod
    def from_pyarrow_error(error: pyarrow.flight.FlightError) -> ErrorInfo:
        """The ErrorInfo a Flight error carries; never raises.

        An error without ErrorInfo (or with a malformed one) gives a placeholder with code
        ``UNKNOWN`` whose message quotes the error's own, as the original package does: client code
        calls this on any error it catches.
        """
        info = ErrorInfo.maybe_from_pyarrow_error(error)
        if info is None:
            return ErrorInfo(msg=f"{_NO_ERROR_INFO} The error message was: {error}", code=ErrorCode.UNKNOWN)
        return info

    @staticmethod
    def maybe_from_pyarrow_error(error: pyarrow.flight.FlightError) -> ErrorInfo | None:
        """The ErrorInfo a Flight error carries, or None when it has none (or a malformed one)."""
        extra_info = getattr(error, "extra_info", None)
        if not extra_info:
            return None
        try:
            return ErrorInfo.from_bytes(extra_info)
        except ValueError:
            return None

    # -- factories ----------------------------------------------------------------------------------

    @staticmethod
    def for_exc(
        code: int,
        e: BaseException,
        extra_msg: str | None = None,
        include_traceback: bool = True,
    ) -> ErrorInfo:
        """An ErrorInfo for an exception: its message, led in by ``extra_msg`` when given
        (``"extra_msg: message"``, or ``"extra_msg."`` when the exception has no message), as in
        the original package; the traceback becomes the detail unless ``include_traceback`` is
        False, which is what to pass whenever the traceback could leak server internals to a client.
        """
        msg = str(e)
        if extra_msg is not None:
            msg = f"{extra_msg}: {msg}" if msg else f"{extra_msg}."
        detail = None
        if include_traceback:
            detail = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        return ErrorInfo(msg=msg, detail=detail, code=code)

    @staticmethod
    def for_reason(code: int, msg: str) -> ErrorInfo:
        return ErrorInfo(msg=msg, code=code)

    @staticmethod
    def for_response(code: int, msg: str, body: bytes) -> ErrorInfo:
        return ErrorInfo(msg=msg, body=body, code=code)

    @staticmethod
    def bad_argument(msg: str) -> pyarrow.flight.FlightServerError:
        """A ready-to-raise error for bad input from the client (code BAD_ARGUMENT)."""
        return ErrorInfo(msg=msg, code=ErrorCode.BAD_ARGUMENT).to_user_error()

    @staticmethod
    def poll(
        flight_info: pyarrow.flight.FlightInfo | None = None,
        retry_descriptor: pyarrow.flight.FlightDescriptor | None = None,
        cancel_descriptor: pyarrow.flight.FlightDescriptor | None = None,
    ) -> pyarrow.flight.FlightTimedOutError:
        """A ready-to-raise timeout telling the client the result is not ready yet (code POLL).

        The ErrorInfo body is a :class:`RetryInfo`; read it back with
        ``RetryInfo.from_bytes(ErrorInfo.from_pyarrow_error(e).body)``.
        """
        return ErrorInfo(
            msg="Work in progress. Retry.",  # the original package's words
            body=RetryInfo(flight_info, retry_descriptor, cancel_descriptor).to_bytes(),
            code=ErrorCode.POLL,
        ).to_timeout_error()

    # -- updates (return self for chaining) -----------------------------------------------------------

    def with_msg(self, msg: str) -> ErrorInfo:
        self._msg = _truncate(msg, _MAX_MSG_LEN)
        return self

    def with_detail(self, detail: str | None = None) -> ErrorInfo:
        self._detail = None if detail is None else _truncate(detail, _MAX_DETAIL_LEN)
        return self

    def with_body(self, body: bytes | str | None = None) -> ErrorInfo:
        """A str body is stored UTF-8 encoded."""
        self._body = _as_body(body)
        return self

    def with_code(self, code: int = ErrorCode.UNKNOWN) -> ErrorInfo:
        self._code = code
        return self

    def copy(self) -> ErrorInfo:
        return ErrorInfo(msg=self._msg, detail=self._detail, body=self._body, code=self._code)

    # -- Flight exceptions --------------------------------------------------------------------------

    def to_flight_error(self, error_factory: ErrorFactory) -> pyarrow.flight.FlightError:
        """Escape hatch for Flight error kinds without a dedicated ``to_*_error`` method."""
        return error_factory(self._msg, self.to_bytes())

    def to_user_error(self) -> pyarrow.flight.FlightServerError:
        """For errors caused by the request; Flight has no better-suited status, so it shares
        FlightServerError with :meth:`to_server_error` and the code tells them apart."""
        return self.to_flight_error(pyarrow.flight.FlightServerError)

    def to_server_error(self) -> pyarrow.flight.FlightServerError:
        return self.to_flight_error(pyarrow.flight.FlightServerError)

    def to_timeout_error(self) -> pyarrow.flight.FlightTimedOutError:
        return self.to_flight_error(pyarrow.flight.FlightTimedOutError)

    def to_internal_error(self) -> pyarrow.flight.FlightInternalError:
        return self.to_flight_error(pyarrow.flight.FlightInternalError)

    def to_cancelled_error(self) -> pyarrow.flight.FlightCancelledError:
        return self.to_flight_error(pyarrow.flight.FlightCancelledError)

    def to_unavailable_error(self) -> pyarrow.flight.FlightUnavailableError:
        return self.to_flight_error(pyarrow.flight.FlightUnavailableError)

    def to_unauthenticated_error(self) -> pyarrow.flight.FlightUnauthenticatedError:
        return self.to_flight_error(pyarrow.flight.FlightUnauthenticatedError)

    def to_unauthorized_error(self) -> pyarrow.flight.FlightUnauthorizedError:
        return self.to_flight_error(pyarrow.flight.FlightUnauthorizedError)

    # -- value semantics ----------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ErrorInfo):
            return NotImplemented
        return (
            self._msg == other._msg
            and self._detail == other._detail
            and self._body == other._body
            and self._code == other._code
        )

    def __hash__(self) -> int:
        # by value, like __eq__; an ErrorInfo changed through with_* after being put into a set or
        # used as a dict key is lost there (as with any mutable value)
        return hash((self._msg, self._detail, self._body, self._code))

    def __repr__(self) -> str:
        return (
            f"ErrorInfo(msg={self._msg!r}, detail={self._detail!r}, body={self._body!r}, code={self._code!r})"
        )
