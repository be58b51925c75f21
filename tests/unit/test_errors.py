from __future__ import annotations

import base64
from collections.abc import Callable

import orjson
import pyarrow
import pyarrow.flight
import pytest

from gooddata_flight_server.errors import ErrorCode, ErrorInfo, RetryInfo

SUFFIX = " [truncated]"


def _flight_info() -> pyarrow.flight.FlightInfo:
    schema = pyarrow.schema([("id", pyarrow.int64()), ("name", pyarrow.string())])
    return pyarrow.flight.FlightInfo(
        schema,
        pyarrow.flight.FlightDescriptor.for_command(b"select 1"),
        [
            pyarrow.flight.FlightEndpoint(b"ticket-1", ["grpc://10.0.0.1:17001"]),
            pyarrow.flight.FlightEndpoint(b"ticket-2", ["grpc://10.0.0.2:17001", "grpc://10.0.0.3:17001"]),
        ],
        42,
        1024,
    )


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:
        return e


# -- ErrorCode --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attr", "value"),
    [
        ("UNKNOWN", 0),
        ("BAD_ARGUMENT", 1),
        ("BAD_REQUEST", 2),
        ("UNSUPPORTED_SERVICE", 3),
        ("INVALID_TICKET", 4),
        ("COMMAND_FAILED", 5),
        ("COMMAND_CANCELLED", 6),
        ("COMMAND_CANCEL_NOT_POSSIBLE", 7),
        ("COMMAND_RESULT_CONSUMED", 8),
        ("TIMEOUT", 100),
        ("POLL", 65637),
        ("BACKPRESSURE", 196710),
        ("INTERNAL_ERROR", 131572),
        ("NOT_READY", 197109),
        ("SHUTTING_DOWN", 131574),
        ("NOT_IMPLEMENTED", 503),
        ("RETRY_HERE", 0x1_0000),
        ("RETRY_OTHER", 0x2_0000),
        ("RETRY_ANY", 0x3_0000),
    ],
)
def test_error_code_value(attr: str, value: int) -> None:
    """Each ErrorCode constant is a plain int with the value from the SPEC table."""
    code = getattr(ErrorCode, attr)
    assert type(code) is int
    assert code == value


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (ErrorCode.UNKNOWN, "unknown (0)"),
        (ErrorCode.BAD_ARGUMENT, "bad_argument (1)"),
        (ErrorCode.COMMAND_CANCEL_NOT_POSSIBLE, "command_cancel_not_possible (7)"),
        (ErrorCode.COMMAND_RESULT_CONSUMED, "command_result_consumed (8)"),
        (ErrorCode.TIMEOUT, "timeout (100)"),
        (ErrorCode.POLL, "poll (101)"),
        (ErrorCode.BACKPRESSURE, "backpressure (102)"),
        (ErrorCode.INTERNAL_ERROR, "internal_error (500)"),
        (ErrorCode.NOT_READY, "not_ready (501)"),
        (ErrorCode.SHUTTING_DOWN, "shutting_down (502)"),
        (ErrorCode.NOT_IMPLEMENTED, "not_implemented (503)"),
        (1000, "custom (1000)"),
        (1001, "custom (1001)"),
        (ErrorCode.RETRY_ANY | 1001, "custom (1001)"),
        (999, "unknown (999)"),
        (9, "unknown (9)"),
        (-1, "unknown (-1)"),
        (101, "poll (101)"),
    ],
)
def test_error_code_name(code: int, expected: str) -> None:
    """name() gives the lowercase name and the low-16-bit number, ignoring retry flags."""
    assert ErrorCode.name(code) == expected


@pytest.mark.parametrize(
    ("code", "here", "other", "any_", "retryable"),
    [
        (ErrorCode.BAD_ARGUMENT, False, False, False, False),
        (ErrorCode.TIMEOUT, False, False, False, False),
        (ErrorCode.NOT_IMPLEMENTED, False, False, False, False),
        (ErrorCode.POLL, True, False, False, True),
        (ErrorCode.INTERNAL_ERROR, False, True, False, True),
        (ErrorCode.SHUTTING_DOWN, False, True, False, True),
        (ErrorCode.BACKPRESSURE, True, True, True, True),
        (ErrorCode.NOT_READY, True, True, True, True),
        (ErrorCode.RETRY_HERE | 1234, True, False, False, True),
    ],
)
def test_error_code_retry_helpers(code: int, here: bool, other: bool, any_: bool, retryable: bool) -> None:
    """Retry helpers read the high-16-bit flags; is_retry_any needs both, is_retryable either."""
    assert ErrorCode.is_retry_here(code) is here
    assert ErrorCode.is_retry_other(code) is other
    assert ErrorCode.is_retry_any(code) is any_
    assert ErrorCode.is_retryable(code) is retryable


# -- ErrorInfo wire format --------------------------------------------------------------------------


def test_to_bytes_exact_with_all_fields() -> None:
    """to_bytes() emits compact UTF-8 JSON with keys msg, detail, code, body and base64 body."""
    info = ErrorInfo("oops", detail="more", body=b"\x00\x01\xff", code=ErrorCode.COMMAND_FAILED)
    assert info.to_bytes() == b'{"msg":"oops","detail":"more","code":5,"body":"AAH/"}'


def test_to_bytes_exact_with_nulls() -> None:
    """Absent detail and body are serialised as JSON null, code defaults to 0."""
    assert ErrorInfo("oops").to_bytes() == b'{"msg":"oops","detail":null,"code":0,"body":null}'


def test_to_bytes_key_order() -> None:
    """Keys appear in exactly the order msg, detail, code, body."""
    keys = list(orjson.loads(ErrorInfo("m", "d", b"b", 1).to_bytes()).keys())
    assert keys == ["msg", "detail", "code", "body"]


def test_to_bytes_is_utf8() -> None:
    """Non-ASCII text is encoded as raw UTF-8, not escaped."""
    assert ErrorInfo("čau 🚀").to_bytes().startswith('{"msg":"čau 🚀"'.encode())


@pytest.mark.parametrize(
    "info",
    [
        ErrorInfo("m"),
        ErrorInfo("m", detail="d"),
        ErrorInfo("m", body=b"payload"),
        ErrorInfo("m", body=b""),
        ErrorInfo("m", detail="d", body=bytes(range(256)), code=ErrorCode.NOT_READY),
        ErrorInfo("ünïcödé", detail="line1\nline2", code=1001),
    ],
)
def test_round_trip(info: ErrorInfo) -> None:
    """from_bytes(to_bytes()) reproduces an equal ErrorInfo, with or without detail and body."""
    back = ErrorInfo.from_bytes(info.to_bytes())
    assert back == info
    assert (back.msg, back.detail, back.body, back.code) == (info.msg, info.detail, info.body, info.code)


def test_from_bytes_tolerates_missing_optional_keys() -> None:
    """Only msg is required; detail and body default to None and code to UNKNOWN."""
    info = ErrorInfo.from_bytes(b'{"msg":"hi"}')
    assert info == ErrorInfo("hi", detail=None, body=None, code=ErrorCode.UNKNOWN)


def test_from_bytes_accepts_null_code() -> None:
    """A null code reads as UNKNOWN."""
    assert ErrorInfo.from_bytes(b'{"msg":"hi","code":null}').code == ErrorCode.UNKNOWN


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not valid UTF-8 JSON"),
        (b"not json", "not valid UTF-8 JSON"),
        (b'{"msg":"\xff"}', "not valid UTF-8 JSON"),
        (b'["msg"]', "expected a JSON object, got list"),
        (b"{}", "ErrorInfo.msg: expected a string, got missing"),
        (b'{"msg":1}', "ErrorInfo.msg: expected a string, got a int"),
        (b'{"msg":"x","detail":5}', "ErrorInfo.detail"),
        (b'{"msg":"x","code":"5"}', "ErrorInfo.code"),
        (b'{"msg":"x","code":true}', "ErrorInfo.code"),
        (b'{"msg":"x","code":1.5}', "ErrorInfo.code"),
        (b'{"msg":"x","body":"not base64!"}', "ErrorInfo.body: not valid base64"),
        (b'{"msg":"x","body":[1]}', "ErrorInfo.body: expected a base64 string"),
    ],
)
def test_from_bytes_malformed(data: bytes, match: str) -> None:
    """Malformed payloads raise ValueError that names the problem."""
    with pytest.raises(ValueError, match=match):
        ErrorInfo.from_bytes(data)


# -- truncation ---------------------------------------------------------------------------------


def test_msg_at_limit_is_kept() -> None:
    """A msg of exactly 256 characters is not truncated."""
    msg = "a" * 256
    assert ErrorInfo(msg).msg == msg


def test_msg_over_limit_is_truncated_with_suffix() -> None:
    """A longer msg keeps its first 256 characters followed by the suffix."""
    msg = "".join(chr(ord("a") + i % 26) for i in range(1000))
    info = ErrorInfo(msg)
    assert info.msg == msg[:256] + SUFFIX


def test_detail_at_limit_is_kept() -> None:
    """A detail of exactly 512 characters is not truncated."""
    detail = "d" * 512
    assert ErrorInfo("m", detail=detail).detail == detail


def test_detail_over_limit_is_truncated_with_suffix() -> None:
    """A longer detail keeps its first 512 characters followed by the suffix."""
    detail = "".join(chr(ord("a") + i % 26) for i in range(513))
    info = ErrorInfo("m", detail=detail)
    assert info.detail == detail[:512] + SUFFIX


def test_truncation_applies_to_copies_and_survives_round_trip() -> None:
    """with_msg/with_detail truncate too, and a truncated payload round-trips unchanged."""
    info = ErrorInfo("m").with_msg("x" * 300).with_detail("y" * 600)
    assert info.msg == "x" * 256 + SUFFIX
    assert info.detail == "y" * 512 + SUFFIX
    assert ErrorInfo.from_bytes(info.to_bytes()) == info


# -- pyarrow errors ---------------------------------------------------------------------------------


def test_from_pyarrow_error_with_extra_info() -> None:
    """An ErrorInfo in extra_info is decoded by from_pyarrow_error and maybe_from_pyarrow_error."""
    info = ErrorInfo("bad", detail="why", body=b"b", code=ErrorCode.BAD_REQUEST)
    err = pyarrow.flight.FlightServerError("bad", info.to_bytes())
    assert ErrorInfo.from_pyarrow_error(err) == info
    assert ErrorInfo.maybe_from_pyarrow_error(err) == info


@pytest.mark.parametrize(
    ("err", "match"),
    [
        (pyarrow.flight.FlightServerError("plain"), "carries no ErrorInfo"),
        (pyarrow.flight.FlightInternalError("garbage", b"<html>"), "not valid UTF-8 JSON"),
        (pyarrow.flight.FlightUnavailableError("wrong shape", b'{"message":"x"}'), "ErrorInfo.msg"),
    ],
)
def test_from_pyarrow_error_without_error_info(err: pyarrow.flight.FlightError, match: str) -> None:
    """Errors without a valid ErrorInfo give the original package's placeholder from
    from_pyarrow_error (code UNKNOWN, the error's message quoted; it never raises) and None from
    maybe_from_pyarrow_error; the reason is what from_bytes says."""
    info = ErrorInfo.from_pyarrow_error(err)
    assert info.code == ErrorCode.UNKNOWN
    assert info.msg == (
        f"Call failed with error that does not contain ErrorInfo. The error message was: {err}"
    )
    assert ErrorInfo.maybe_from_pyarrow_error(err) is None
    if err.extra_info:
        with pytest.raises(ValueError, match=match):
            ErrorInfo.from_bytes(err.extra_info)


@pytest.mark.parametrize(
    ("method", "exc_type"),
    [
        ("to_user_error", pyarrow.flight.FlightServerError),
        ("to_server_error", pyarrow.flight.FlightServerError),
        ("to_timeout_error", pyarrow.flight.FlightTimedOutError),
        ("to_internal_error", pyarrow.flight.FlightInternalError),
        ("to_cancelled_error", pyarrow.flight.FlightCancelledError),
        ("to_unavailable_error", pyarrow.flight.FlightUnavailableError),
        ("to_unauthenticated_error", pyarrow.flight.FlightUnauthenticatedError),
        ("to_unauthorized_error", pyarrow.flight.FlightUnauthorizedError),
    ],
)
def test_error_factories(method: str, exc_type: type[pyarrow.flight.FlightError]) -> None:
    """Each to_*_error builds the right pyarrow exception with msg as message and ErrorInfo as extra_info."""
    info = ErrorInfo("it failed", detail="trace", body=b"\x01", code=ErrorCode.COMMAND_FAILED)
    err = getattr(info, method)()
    assert type(err) is exc_type
    assert str(err) == "it failed"
    assert err.extra_info == info.to_bytes()
    assert ErrorInfo.from_pyarrow_error(err) == info


def test_to_flight_error_calls_factory_with_msg_and_bytes() -> None:
    """to_flight_error passes (msg, to_bytes()) to the factory and returns what it builds."""
    calls: list[tuple[str, bytes]] = []

    def factory(msg: str, extra_info: bytes) -> pyarrow.flight.FlightError:
        calls.append((msg, extra_info))
        return pyarrow.flight.FlightCancelledError(f"custom: {msg}", extra_info)

    info = ErrorInfo.for_reason(ErrorCode.COMMAND_CANCELLED, "stop")
    err = info.to_flight_error(factory)
    assert calls == [("stop", info.to_bytes())]
    assert isinstance(err, pyarrow.flight.FlightCancelledError)
    assert str(err) == "custom: stop"


# -- factories and copies ---------------------------------------------------------------------------


def test_for_exc_with_traceback() -> None:
    """for_exc puts the exception's message in msg (as the original package does) and the
    formatted traceback in detail."""
    e = _raised(ValueError("boom"))
    info = ErrorInfo.for_exc(ErrorCode.COMMAND_FAILED, e)
    assert info.msg == "boom"
    assert info.code == ErrorCode.COMMAND_FAILED
    assert info.detail is not None
    assert info.detail.startswith("Traceback (most recent call last):")
    assert "_raised" in info.detail
    assert info.detail.endswith("ValueError: boom\n")
    assert info.body is None


def test_for_exc_with_extra_msg_and_without_traceback() -> None:
    """extra_msg prefixes the message and include_traceback=False leaves detail empty."""
    e = _raised(KeyError("k"))
    info = ErrorInfo.for_exc(ErrorCode.INTERNAL_ERROR, e, extra_msg="loading failed", include_traceback=False)
    assert info.msg == "loading failed: 'k'"
    assert info.detail is None
    assert info.code == ErrorCode.INTERNAL_ERROR


def test_for_exc_without_message() -> None:
    """An exception with an empty str() leaves the extra message with a full stop, or nothing."""
    info = ErrorInfo.for_exc(ErrorCode.UNKNOWN, RuntimeError(), extra_msg="Failed", include_traceback=False)
    assert info.msg == "Failed."
    assert ErrorInfo.for_exc(ErrorCode.UNKNOWN, RuntimeError(), include_traceback=False).msg == ""


def test_for_exc_never_raised_exception() -> None:
    """An exception that was never raised still yields a detail with its type and message."""
    info = ErrorInfo.for_exc(ErrorCode.UNKNOWN, OSError("disk"))
    assert info.detail == "OSError: disk\n"


def test_simple_factories() -> None:
    """for_reason and for_response set exactly the fields they name; bad_argument is ready to raise."""
    assert ErrorInfo.for_reason(7, "no") == ErrorInfo("no", code=7)
    assert ErrorInfo.for_response(1001, "resp", b"{}") == ErrorInfo("resp", body=b"{}", code=1001)
    error = ErrorInfo.bad_argument("x must be > 0")
    assert isinstance(error, pyarrow.flight.FlightServerError)
    assert ErrorInfo.from_pyarrow_error(error) == ErrorInfo("x must be > 0", code=ErrorCode.BAD_ARGUMENT)


@pytest.mark.parametrize(
    ("modify", "expected"),
    [
        (lambda i: i.with_msg("new"), ErrorInfo("new", "d", b"b", 5)),
        (lambda i: i.with_detail("new"), ErrorInfo("m", "new", b"b", 5)),
        (lambda i: i.with_detail(), ErrorInfo("m", None, b"b", 5)),
        (lambda i: i.with_body(b"new"), ErrorInfo("m", "d", b"new", 5)),
        (lambda i: i.with_body(), ErrorInfo("m", "d", None, 5)),
        (lambda i: i.with_code(6), ErrorInfo("m", "d", b"b", 6)),
    ],
)
def test_with_methods_update_and_return_self(
    modify: Callable[[ErrorInfo], ErrorInfo], expected: ErrorInfo
) -> None:
    """with_* change one field in place and return the same instance, for chaining."""
    original = ErrorInfo("m", "d", b"b", 5)
    modified = modify(original)
    assert modified is original
    assert original == expected


def test_copy_is_independent() -> None:
    """copy() gives an equal ErrorInfo whose updates leave the original alone."""
    original = ErrorInfo("m", "d", b"b", 5)
    copied = original.copy().with_code(6)
    assert original == ErrorInfo("m", "d", b"b", 5)
    assert copied == ErrorInfo("m", "d", b"b", 6)


def test_properties_are_read_only() -> None:
    """ErrorInfo fields cannot be reassigned."""
    info = ErrorInfo("m")
    with pytest.raises(AttributeError):
        info.msg = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "other",
    [
        ErrorInfo("x", "d", b"b", 1),
        ErrorInfo("m", "x", b"b", 1),
        ErrorInfo("m", None, b"b", 1),
        ErrorInfo("m", "d", b"x", 1),
        ErrorInfo("m", "d", None, 1),
        ErrorInfo("m", "d", b"b", 2),
    ],
)
def test_equality_considers_every_field(other: ErrorInfo) -> None:
    """ErrorInfos differing in any one field are not equal."""
    assert ErrorInfo("m", "d", b"b", 1) != other


def test_equality_of_equal_instances() -> None:
    """Equal ErrorInfos compare equal, hash alike (they can go into sets, as in the original) and
    never equal other types."""
    a, b = ErrorInfo("m", "d", b"b", 1), ErrorInfo("m", "d", b"b", 1)
    assert a == b
    assert a != "m"
    assert hash(a) == hash(b) and len({a, b}) == 1


def test_original_spellings_of_updates() -> None:
    """with_body takes a str (stored UTF-8) and with_code resets to UNKNOWN without an argument;
    keyword names are the original's."""
    info = ErrorInfo("m", code=5).with_body("ünï").with_code()
    assert (info.body, info.code) == ("ünï".encode(), ErrorCode.UNKNOWN)
    error = info.to_flight_error(error_factory=pyarrow.flight.FlightTimedOutError)
    assert isinstance(error, pyarrow.flight.FlightTimedOutError)
    assert ErrorInfo.from_pyarrow_error(error=error) == info
    assert ErrorInfo.from_bytes(val=info.to_bytes()) == info


def test_repr_shows_fields() -> None:
    """repr() shows every field so logs identify the error."""
    assert repr(ErrorInfo("m", "d", b"b", 5)) == "ErrorInfo(msg='m', detail='d', body=b'b', code=5)"


# -- RetryInfo and poll -----------------------------------------------------------------------------


def test_retry_info_round_trip_restores_flight_info() -> None:
    """RetryInfo round-trips flight_info as a FlightInfo with equal schema, descriptor and endpoints."""
    fi = _flight_info()
    retry = pyarrow.flight.FlightDescriptor.for_command(b"retry")
    cancel = pyarrow.flight.FlightDescriptor.for_path("cancel", "me")
    back = RetryInfo.from_bytes(RetryInfo(fi, retry, cancel).to_bytes())

    assert isinstance(back.flight_info, pyarrow.flight.FlightInfo)
    assert back.flight_info.schema.equals(fi.schema)
    assert back.flight_info.descriptor == fi.descriptor
    assert back.flight_info.endpoints == fi.endpoints
    assert back.flight_info.total_records == 42
    assert back.flight_info.total_bytes == 1024
    assert isinstance(back.retry_descriptor, pyarrow.flight.FlightDescriptor)
    assert back.retry_descriptor == retry
    assert back.cancel_descriptor == cancel
    assert back == RetryInfo(fi, retry, cancel)


def test_retry_info_wire_format() -> None:
    """RetryInfo JSON holds base64 of each field's serialize(), or null."""
    retry = pyarrow.flight.FlightDescriptor.for_command(b"retry")
    expected = (
        b'{"flight_info":null,"retry_descriptor":"'
        + base64.b64encode(retry.serialize())
        + b'","cancel_descriptor":null}'
    )
    assert RetryInfo(retry_descriptor=retry).to_bytes() == expected


@pytest.mark.parametrize(
    "data", [b"{}", b'{"flight_info":null,"retry_descriptor":null,"cancel_descriptor":null}']
)
def test_retry_info_empty(data: bytes) -> None:
    """Missing or null RetryInfo fields read back as None."""
    info = RetryInfo.from_bytes(data)
    assert (info.flight_info, info.retry_descriptor, info.cancel_descriptor) == (None, None, None)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"nope", "RetryInfo: not valid UTF-8 JSON"),
        (b"1", "RetryInfo: expected a JSON object"),
        (b'{"flight_info":"%%%"}', "RetryInfo.flight_info: not valid base64"),
        (
            b'{"retry_descriptor":"' + base64.b64encode(b"\xff\xff garbage") + b'"}',
            "RetryInfo.retry_descriptor: cannot deserialise",
        ),
        (
            b'{"flight_info":"' + base64.b64encode(b"\xff\xff garbage") + b'"}',
            "RetryInfo.flight_info: cannot deserialise",
        ),
    ],
)
def test_retry_info_malformed(data: bytes, match: str) -> None:
    """Malformed RetryInfo payloads raise ValueError naming the field."""
    with pytest.raises(ValueError, match=match):
        RetryInfo.from_bytes(data)


def test_poll_carries_retry_info() -> None:
    """poll() is a FlightTimedOutError with code POLL and a body decoding to the RetryInfo it was given."""
    fi = _flight_info()
    retry = pyarrow.flight.FlightDescriptor.for_command(b"task-1")
    cancel = pyarrow.flight.FlightDescriptor.for_command(b"cancel-task-1")
    error = ErrorInfo.poll(flight_info=fi, retry_descriptor=retry, cancel_descriptor=cancel)

    assert isinstance(error, pyarrow.flight.FlightTimedOutError)
    info = ErrorInfo.from_pyarrow_error(error)
    assert info.code == ErrorCode.POLL
    assert info.body is not None
    assert RetryInfo.from_bytes(info.body) == RetryInfo(fi, retry, cancel)


def test_poll_without_arguments() -> None:
    """poll() with no arguments still carries a RetryInfo whose fields are all None."""
    info = ErrorInfo.from_pyarrow_error(ErrorInfo.poll())
    assert info.body is not None
    assert RetryInfo.from_bytes(info.body) == RetryInfo()


def test_retry_info_equality() -> None:
    """RetryInfos with different descriptors are not equal and RetryInfo never equals other types."""
    a = RetryInfo(retry_descriptor=pyarrow.flight.FlightDescriptor.for_command(b"a"))
    b = RetryInfo(retry_descriptor=pyarrow.flight.FlightDescriptor.for_command(b"b"))
    assert a != b
    assert a != "a"


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "ok"),
        (ErrorInfo.poll(), "poll"),
        (ErrorInfo.for_reason(ErrorCode.TIMEOUT, "slow").to_timeout_error(), "timed_out"),
        (pyarrow.flight.FlightTimedOutError("no ErrorInfo"), "timed_out"),
        (ErrorInfo.for_reason(ErrorCode.INVALID_TICKET, "gone").to_user_error(), "bad_request"),
        (ErrorInfo.for_reason(ErrorCode.COMMAND_CANCELLED, "stop").to_server_error(), "cancelled"),
        (ErrorInfo.for_reason(ErrorCode.BACKPRESSURE, "full").to_unavailable_error(), "unavailable"),
        (NotImplementedError("x"), "not_implemented"),
        (ValueError("x"), "error"),
    ],
)
def test_outcome_labels(error: BaseException | None, outcome: str) -> None:
    """The metric outcome of an answer; a POLL is its own outcome, not a timeout (alerts count those)."""
    from gooddata_flight_server.errors.classify import OUTCOMES, outcome_of

    assert outcome_of(error) == outcome
    assert outcome in OUTCOMES
