"""Token authentication: the authenticator every call passes and the strategies that verify tokens.

``authentication_method = "token"`` has the RPC edge ask :class:`TokenAuthenticator` about every
call; it reads the token from the request headers and asks the :class:`TokenVerificationStrategy`
named by ``token_verification`` (``loading``): the built-in :class:`EnumeratedTokenVerification` (a
list of shared secrets), the built-in :class:`JwtTokenVerification` (signed JWTs, the ``jwt``
extra), or a strategy of your own.
"""

from gooddata_flight_server.auth.jwt import JwtTokenVerification
from gooddata_flight_server.auth.middleware import (
    AUTH_FAILURE_REASONS,
    AUTH_TOKEN_KEY,
    TokenAuthenticator,
    TokenAuthMiddleware,
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
    "TokenAuthenticator",
    "TokenVerificationStrategy",
]
