"""Token authentication on its own: header parsing, each rejection, strategy errors, token data."""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow.flight as flight
import pytest
import structlog.testing

from gooddata_flight_server.auth import middleware as auth_middleware
from gooddata_flight_server.auth.middleware import AUTH_FAILURE_REASONS, TokenAuthenticator
from gooddata_flight_server.auth.strategy import TokenVerificationStrategy
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.settings import AuthenticationMethod, ServerConfig

TOKEN = "s3cr3t-T0KEN-value"
CALL = flight.CallInfo(flight.FlightMethod.DO_ACTION)

CONFIG = ServerConfig(
    listen_port=0,
    advertise_host="127.0.0.1",
    authentication_method=AuthenticationMethod.Token,
    task_threads=1,
    task_close_threads=1,
    shutdown_timeout_sec=1.0,
)


class Scripted(TokenVerificationStrategy):
    """Answers according to the token: a dict for TOKEN, otherwise what ``outcomes`` says."""

    def __init__(self, outcomes: dict[str, Any] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.seen: list[tuple[Any, str]] = []

    def verify(self, call_info: flight.CallInfo, token: str) -> Any:
        self.seen.append((call_info, token))
        outcome = self.outcomes.get(token, {"user": "alice"} if token == TOKEN else None)
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is None:
            raise flight.FlightUnauthenticatedError("the token is not valid")
        return None if outcome == "none" else outcome

    @classmethod
    def create(cls, ctx: ServerContext) -> Scripted:
        return cls()


class _Failures(dict[str, Any]):
    """Stands in for the failure counter's children (reason -> child): records each ``inc()``."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __missing__(self, reason: str) -> Any:
        seen = self.seen

        class _Child:
            def inc(self) -> None:
                seen.append(reason)

        return _Child()


_FAILURES = _Failures()


def _factory(strategy: TokenVerificationStrategy, **config: Any) -> TokenAuthenticator:
    authenticator = TokenAuthenticator(dataclasses.replace(CONFIG, **config), _FAILURES)
    authenticator._strategy = strategy  # what activate() does after loading; tested through real servers
    return authenticator


@pytest.fixture
def failures() -> list[str]:
    """The reasons counted as auth failures during the test, in order."""
    _FAILURES.seen.clear()
    return _FAILURES.seen


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    """The scheme is matched case-insensitively (RFC 7235), with any spacing before the token."""
    strategy = Scripted({TOKEN: {"user": "ann"}})
    assert _factory(strategy).authenticate(CALL, {"authorization": [f"{scheme}  {TOKEN}"]}) == {"user": "ann"}


def test_bearer_token_is_stripped_and_its_data_returned(failures: list[str]) -> None:
    """'Bearer <token>' passes the stripped token and the CallInfo to verify; token_data is its result."""
    strategy = Scripted()
    result = _factory(strategy).authenticate(CALL, {"authorization": [f"Bearer   {TOKEN}  "]})
    assert result == {"user": "alice"}
    assert strategy.seen == [(CALL, TOKEN)]
    assert failures == []


def test_none_from_verify_gives_token_data_none() -> None:
    """A strategy returning None still authenticates the call, with token_data None."""
    result = _factory(Scripted({"anonymous-ok": "none"})).authenticate(
        CALL, {"authorization": ["Bearer anonymous-ok"]}
    )
    assert result is None


@pytest.mark.parametrize(
    ("headers", "reason", "message"),
    [
        ({}, "missing_token", "authentication required: send the token in the header 'authorization: Bearer"),
        ({"authorization": []}, "missing_token", "authentication required"),
        ({"authorization": [f"Bearer {TOKEN}", f"Bearer {TOKEN}"]}, "duplicate_header", "more than once"),
        ({"authorization": [f"Basic {TOKEN}"]}, "wrong_scheme", "must have the form 'Bearer <token>'"),
        ({"authorization": [TOKEN]}, "wrong_scheme", "must have the form 'Bearer <token>'"),
        ({"authorization": ["Bearer"]}, "empty_token", "is empty"),
        ({"authorization": ["Bearer    "]}, "empty_token", "is empty"),
        ({"authorization": ["Bearer wrong-token"]}, "invalid_token", "the token is not valid"),
    ],
)
def test_each_rejection_is_unauthenticated_logged_and_counted(
    failures: list[str], headers: dict[str, list[Any]], reason: str, message: str
) -> None:
    """Every way a call fails authentication raises UNAUTHENTICATED saying which, logs and counts it."""
    with structlog.testing.capture_logs() as logs, pytest.raises(flight.FlightUnauthenticatedError) as caught:
        _factory(Scripted()).authenticate(CALL, headers)
    assert message in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert failures == [reason]
    assert reason in AUTH_FAILURE_REASONS
    (event,) = logs
    assert event["event"] == "auth_failed"
    assert event["log_level"] == "warning"
    assert event["reason"] == reason
    assert event["rpc"] == "DO_ACTION"
    assert TOKEN not in repr(event)


def test_custom_header_takes_the_whole_stripped_value(failures: list[str]) -> None:
    """With token_header_name the whole value is the token; the name is matched case-insensitively."""
    factory = _factory(Scripted(), token_header_name="X-Api-Key")
    assert factory.header_name == "x-api-key"
    assert factory.authenticate(CALL, {"x-api-key": [f"  {TOKEN} "]}) == {"user": "alice"}
    with pytest.raises(flight.FlightUnauthenticatedError, match="header 'x-api-key: <token>'"):
        factory.authenticate(CALL, {"authorization": [f"Bearer {TOKEN}"]})
    with pytest.raises(flight.FlightUnauthenticatedError, match="the token is not valid"):
        factory.authenticate(CALL, {"x-api-key": [f"Bearer {TOKEN}"]})  # no Bearer scheme here
    assert failures == ["missing_token", "invalid_token"]


def test_binary_header_values_are_decoded(failures: list[str]) -> None:
    """A -bin header arrives as bytes: UTF-8 is accepted, anything else is a malformed header."""
    factory = _factory(Scripted(), token_header_name="x-token-bin")
    assert factory.authenticate(CALL, {"x-token-bin": [TOKEN.encode()]}) == {"user": "alice"}
    with pytest.raises(flight.FlightUnauthenticatedError, match="not valid UTF-8"):
        factory.authenticate(CALL, {"x-token-bin": [b"\xff\xfe"]})
    assert failures == ["malformed_header"]


def test_forbidden_from_the_strategy_passes_through(failures: list[str]) -> None:
    """A strategy's FlightUnauthorizedError reaches the client as is and counts as forbidden."""
    strategy = Scripted({"reader-token": flight.FlightUnauthorizedError("read-only token may not write")})
    with pytest.raises(flight.FlightUnauthorizedError, match="read-only token may not write"):
        _factory(strategy).authenticate(CALL, {"authorization": ["Bearer reader-token"]})
    assert failures == ["forbidden"]


@pytest.mark.parametrize(
    ("error", "expected_type", "expected_message"),
    [
        (
            flight.FlightUnauthenticatedError(f"unknown token {TOKEN}"),
            flight.FlightUnauthenticatedError,
            "the token is not valid",
        ),
        (flight.FlightUnauthorizedError(f"{TOKEN} may not"), flight.FlightUnauthorizedError, "access denied"),
        (
            flight.FlightUnauthenticatedError("expired", f"token={TOKEN}".encode()),
            flight.FlightUnauthenticatedError,
            "the token is not valid",
        ),
    ],
)
def test_strategy_errors_quoting_the_token_are_replaced(
    error: Exception, expected_type: type[Exception], expected_message: str
) -> None:
    """An error whose message or extra_info contains the token is replaced by a generic one."""
    with pytest.raises(expected_type) as caught:
        _factory(Scripted({TOKEN: error})).authenticate(CALL, {"authorization": [f"Bearer {TOKEN}"]})
    assert str(caught.value) == expected_message
    assert TOKEN.encode() not in (getattr(caught.value, "extra_info", None) or b"")


def test_other_flight_errors_from_the_strategy_pass_through(failures: list[str]) -> None:
    """A strategy may answer e.g. UNAVAILABLE when its backend is down; it counts as strategy_error."""
    strategy = Scripted({TOKEN: flight.FlightUnavailableError("token service is down")})
    with pytest.raises(flight.FlightUnavailableError, match="token service is down"):
        _factory(strategy).authenticate(CALL, {"authorization": [f"Bearer {TOKEN}"]})
    assert failures == ["strategy_error"]


def test_unexpected_strategy_error_is_internal_with_a_reference_and_no_token(failures: list[str]) -> None:
    """Any other exception: INTERNAL with a reference id; the log has the traceback, token redacted."""
    strategy = Scripted({TOKEN: KeyError(f"no row for {TOKEN}")})
    with structlog.testing.capture_logs() as logs, pytest.raises(flight.FlightInternalError) as caught:
        _factory(strategy).authenticate(CALL, {"authorization": [f"Bearer {TOKEN}"]})
    info = ErrorInfo.from_pyarrow_error(caught.value)
    assert info.code == ErrorCode.INTERNAL_ERROR
    assert TOKEN not in str(caught.value)
    assert "KeyError" not in str(caught.value)
    (event,) = logs
    assert event["log_level"] == "error"
    assert event["reason"] == "strategy_error"
    assert event["error_ref"] in info.msg
    assert "KeyError: 'no row for <redacted>'" in event["exception"]
    assert TOKEN not in repr(event)
    assert failures == ["strategy_error"]


def test_success_path_logs_and_counts_nothing(failures: list[str]) -> None:
    """Accepted calls are not logged or counted as failures."""
    factory = _factory(Scripted({"anon": "none"}))
    with structlog.testing.capture_logs() as logs:
        assert factory.authenticate(CALL, {"authorization": ["Bearer anon"]}) is None
        assert factory.authenticate(CALL, {"authorization": [f"Bearer {TOKEN}"]}) == {"user": "alice"}
    assert logs == []
    assert failures == []


def test_calls_before_activation_are_refused_as_not_ready() -> None:
    """Without an active strategy every call is UNAVAILABLE/NOT_READY, never let through."""
    factory = TokenAuthenticator(CONFIG)
    assert factory.strategy is None
    with pytest.raises(flight.FlightUnavailableError) as caught:
        factory.authenticate(CALL, {"authorization": [f"Bearer {TOKEN}"]})
    assert ErrorInfo.from_pyarrow_error(caught.value).code == ErrorCode.NOT_READY


def test_activate_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """activate() creates the strategy once; a second activation is a programming error."""
    created: list[ServerContext] = []

    def fake_create(spec: str, ctx: ServerContext) -> TokenVerificationStrategy:
        created.append(ctx)
        return Scripted()

    monkeypatch.setattr(auth_middleware, "create_strategy", fake_create)
    factory = TokenAuthenticator(dataclasses.replace(CONFIG, token_verification="pkg.mod:Cls"))
    ctx: Any = object()
    strategy = factory.activate(ctx)
    assert factory.strategy is strategy
    with pytest.raises(RuntimeError, match="already active"):
        factory.activate(ctx)
    assert created == [ctx]


def test_default_strategy_is_enumerated(monkeypatch: pytest.MonkeyPatch) -> None:
    """With token_verification unset, activate() asks for EnumeratedTokenVerification."""
    specs: list[str] = []

    def fake_create(spec: str, ctx: ServerContext) -> TokenVerificationStrategy:
        specs.append(spec)
        return Scripted()

    monkeypatch.setattr(auth_middleware, "create_strategy", fake_create)
    ctx: Any = object()
    TokenAuthenticator(CONFIG).activate(ctx)
    assert specs == ["EnumeratedTokenVerification"]
