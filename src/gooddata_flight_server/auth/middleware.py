"""Token authentication of every call: find the token in the headers, ask the strategy, reject or pass.

The RPC edge (``rpc.edge``) asks :class:`TokenAuthenticator` about every call once the availability
gate let it through. The strategy needs the ``ServerContext`` that only exists after the listener
bound, so the server builds the authenticator first and ``activate``-s it once the context exists.

``authenticate`` runs on every RPC, so its success path is kept short: the header name is lowercased
once, nothing is logged, nothing is compiled. Every rejection is logged as an ``auth_failed`` event
with a reason code (rate-limited) and counted in ``gdfs_auth_failures_total``; neither the token
nor the header value is ever logged or put into an error (an error a strategy raises that contains
the token is replaced by a generic one).
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

import pyarrow.flight
import structlog

from gooddata_flight_server.auth.loading import create_strategy
from gooddata_flight_server.auth.strategy import DEFAULT_STRATEGY, TokenVerificationStrategy
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.errors.classify import AUTH_FAILURE_REASONS, auth_rejection_reason
from gooddata_flight_server.observability.log_limit import LogLimiter
from gooddata_flight_server.settings import ServerConfig

__all__ = ["AUTH_FAILURE_REASONS", "AUTH_TOKEN_KEY", "TokenAuthMiddleware", "TokenAuthenticator"]

log = structlog.get_logger(__name__)

AUTH_TOKEN_KEY = "auth_token"

_BEARER = "bearer"  # the scheme, matched case-insensitively (RFC 7235: "Bearer", "bearer", "BEARER")
_REDACTED = "<redacted>"


class TokenAuthMiddleware(pyarrow.flight.ServerMiddleware):  # type: ignore[misc]
    """The authenticated call's token data, reachable from handlers under the key ``"auth_token"``::

    context.get_middleware("auth_token").token_data
    """

    __slots__ = ("_token_data",)

    MiddlewareName = AUTH_TOKEN_KEY  # the original package's name for the key

    def __init__(self, token: str | None = None, token_data: Any = None) -> None:
        """``token`` is accepted for the original package's signature and not kept: the token is a
        secret, and handlers need only what the strategy made of it."""
        super().__init__()
        self._token_data = token_data

    @property
    def token_data(self) -> Any:
        """What the verification strategy's ``verify`` returned for this call's token."""
        return self._token_data


class TokenAuthenticator:
    """Authenticates every call with the strategy named by ``token_verification``.

    Build it with the server config, hand it to the RPC edge, and call ``activate(ctx)`` once the
    server context exists and before the availability gate opens.
    """

    def __init__(self, config: ServerConfig, failures: Mapping[str, Any] | None = None) -> None:
        """``failures``: the counter child of each reason, when metrics are on."""
        custom_header = config.token_header_name
        self._failures = failures
        self._bearer = not custom_header
        self._header = (custom_header or "authorization").strip().lower()
        self._spec = config.token_verification or DEFAULT_STRATEGY
        self._strategy: TokenVerificationStrategy | None = None
        self._log_limit = LogLimiter()  # a client with bad tokens must not flood the log
        shape = f"'{self._header}: Bearer <token>'" if self._bearer else f"'{self._header}: <token>'"
        self._messages = {
            "missing_token": f"authentication required: send the token in the header {shape}",
            "duplicate_header": f"the header '{self._header}' was sent more than once; send it once",
            "wrong_scheme": f"the header '{self._header}' must have the form 'Bearer <token>'",
            "empty_token": f"the token in the header '{self._header}' is empty",
            "malformed_header": f"the header '{self._header}' is not valid UTF-8",
        }

    @property
    def header_name(self) -> str:
        """The (lowercase) header the token is read from."""
        return self._header

    @property
    def strategy(self) -> TokenVerificationStrategy | None:
        """The active strategy; None until ``activate`` succeeded."""
        return self._strategy

    def activate(self, ctx: ServerContext) -> TokenVerificationStrategy:
        """Load the strategy and call its ``create(ctx)`` once; from now on calls are verified.

        Raises LoadError (the strategy cannot be found or is not a strategy), ConfigError (its
        settings are invalid) or AuthSetupError (its ``create`` failed); the server must then fail
        to start. Activating twice is a programming error.
        """
        if self._strategy is not None:
            raise RuntimeError("the token authentication middleware is already active")
        strategy = create_strategy(self._spec, ctx)
        self._strategy = strategy
        log.info(
            "token_auth_enabled",
            strategy=f"{type(strategy).__module__}:{type(strategy).__qualname__}",
            header=self._header,
            scheme="bearer" if self._bearer else "raw",
        )
        return strategy

    def authenticate(self, info: pyarrow.flight.CallInfo, headers: dict[str, list[Any]]) -> Any:
        """What the strategy says of the call's token (its token data), or the Flight error that
        rejects the call: UNAUTHENTICATED, or the strategy's own (UNAUTHORIZED ...)."""
        strategy = self._strategy
        if strategy is None:  # only reachable without the availability gate in front
            raise ErrorInfo.for_reason(
                ErrorCode.NOT_READY, "The server is starting up and not ready to serve yet; retry shortly."
            ).to_unavailable_error()
        values = headers.get(self._header)
        if not values:
            self._reject(info, "missing_token")
        if len(values) != 1:
            self._reject(info, "duplicate_header")
        value = values[0]
        if type(value) is not str:  # pyarrow hands over the values of binary (-bin) headers as bytes
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                self._reject(info, "malformed_header")
        if self._bearer:
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() != _BEARER:
                self._reject(info, "wrong_scheme")
            token = token.strip()
        else:
            token = value.strip()
        if not token:
            self._reject(info, "empty_token")
        try:
            token_data = strategy.verify(info, token)
        except Exception as e:
            reason = auth_rejection_reason(e)
            if reason is None:
                self._strategy_failed(info, e, token)
            self._reject_from_strategy(info, reason, e, token)
        return token_data

    def _count(self, reason: str) -> None:
        if self._failures is not None:
            self._failures[reason].inc()

    # -- rejections (the slow path) ----------------------------------------------------------------

    def _reject(self, info: pyarrow.flight.CallInfo, reason: str) -> NoReturn:
        message = self._messages[reason]
        self._log_limit.log(reason, log.warning, "auth_failed", reason=reason, rpc=_rpc(info), detail=message)
        self._count(reason)
        raise pyarrow.flight.FlightUnauthenticatedError(message)

    def _reject_from_strategy(
        self, info: pyarrow.flight.CallInfo, reason: str, error: pyarrow.flight.FlightError, token: str
    ) -> NoReturn:
        if _mentions(error, token):
            # the strategy put the token into its error: keep the kind of error, drop the text
            error = type(error)("the token is not valid" if reason == "invalid_token" else "access denied")
        self._log_limit.log(
            reason,
            log.warning,
            "auth_failed",
            reason=reason,
            rpc=_rpc(info),
            detail=str(error),
            error_type=type(error).__name__,
        )
        self._count(reason)
        raise error

    def _strategy_failed(self, info: pyarrow.flight.CallInfo, error: Exception, token: str) -> NoReturn:
        """An unexpected failure of the strategy is the server's problem, not the client's: INTERNAL.

        Its details go to the log only, under a reference the client gets, with the token cut out
        of the traceback in case the strategy's exception message quoted it.
        """
        ref = uuid.uuid4().hex
        text = "".join(traceback.format_exception(error)).replace(token, _REDACTED)
        self._log_limit.log(
            "strategy_error",
            log.error,
            "auth_failed",
            reason="strategy_error",
            rpc=_rpc(info),
            error_type=type(error).__name__,
            error_ref=ref,
            exception=text,
        )
        self._count("strategy_error")
        raise ErrorInfo.for_reason(
            ErrorCode.INTERNAL_ERROR, f"Token verification failed on the server. Reference: {ref}"
        ).to_internal_error() from None


def _rpc(info: pyarrow.flight.CallInfo) -> str:
    method = getattr(info, "method", None)
    return str(getattr(method, "name", method))


def _mentions(error: pyarrow.flight.FlightError, token: str) -> bool:
    extra = getattr(error, "extra_info", None) or b""
    return token in str(error) or token.encode("utf-8", "surrogatepass") in bytes(extra)
