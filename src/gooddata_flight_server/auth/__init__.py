"""Token authentication: the per-call middleware and the strategies that verify tokens.

``authentication_method = "token"`` puts :class:`TokenAuthMiddlewareFactory` in front of every
call; it reads the token from the request headers and asks the :class:`TokenVerificationStrategy`
named by ``token_verification``: the built-in :class:`EnumeratedTokenVerification` (a list of
shared secrets), the built-in :class:`JwtTokenVerification` (signed JWTs, the ``jwt`` extra), or
a strategy of your own.
"""

from gooddata_flight_server.auth.jwt import JwtTokenVerification
from gooddata_flight_server.auth.middleware import (
    AUTH_FAILURE_REASONS,
    AUTH_TOKEN_KEY,
    TokenAuthMiddleware,
    TokenAuthMiddlewareFactory,
    on_auth_failure,
)
from gooddata_flight_server.auth.strategy import (
    AuthSetupError,
    EnumeratedTokenVerification,
    TokenVerificationStrategy,
)

__all__ = [
    "AUTH_FAILURE_REASONS",
    "AUTH_TOKEN_KEY",
    "AuthSetupError",
    "EnumeratedTokenVerification",
    "JwtTokenVerification",
    "TokenAuthMiddleware",
    "TokenAuthMiddlewareFactory",
    "TokenVerificationStrategy",
    "on_auth_failure",
]
