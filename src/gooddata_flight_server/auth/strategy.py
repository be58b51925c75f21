"""Token verification strategies: the interface, the built-in enumerated tokens, loading by name.

A strategy is created once at startup (``create(ctx)``, where it reads its own settings and may
fail the startup) and then asked on every call whether a token is valid (``verify``). Which
strategy runs is the ``token_verification`` setting: the name of a built-in strategy, a module
holding exactly one concrete strategy class, or ``module:ClassName``.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

import pyarrow.flight

from gooddata_flight_server._settings_parse import env_var_name
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.settings import ConfigError

__all__ = [
    "DEFAULT_STRATEGY",
    "AuthSetupError",
    "EnumeratedTokenVerification",
    "TokenVerificationStrategy",
    "read_enumerated_tokens",
]

DEFAULT_STRATEGY = "EnumeratedTokenVerification"
ENUMERATED_TOKENS_SECTION = "enumerated_tokens"


class AuthSetupError(Exception):
    """Token authentication cannot be set up (a strategy's ``create`` failed, a dependency is missing).

    The message is one line, naming the strategy; the server fails to start with it.
    """


class TokenVerificationStrategy(abc.ABC):
    """Decides whether a token is valid and what a call may know about the token's bearer.

    Implement ``verify`` to check one token. ``verify`` runs on every call, on gRPC's threads and
    concurrently: keep it fast and thread-safe, and do not put the token into errors or logs.

    Optionally override ``create`` to read settings from ``ctx.settings`` and build the strategy
    (it runs once, at startup, before any call is served; raising there fails the startup; by
    default it returns ``cls()``, as in the original package), and ``check_settings`` to validate
    those settings when the configuration is loaded, before the server binds any port.
    """

    @abc.abstractmethod
    def verify(self, call_info: pyarrow.flight.CallInfo, token: str) -> Any:
        """Return data about the token's bearer, or raise when the token is not acceptable.

        The return value becomes ``token_data`` of the ``TokenAuthMiddleware`` that handlers reach
        with ``context.get_middleware("auth_token")``. Raise ``FlightUnauthenticatedError`` for an
        invalid token and ``FlightUnauthorizedError`` for a valid token that may not make this call
        (``call_info.method`` says which RPC it is). Any other exception is treated as a failure of
        the strategy: the client gets an INTERNAL error with a reference, the server log the details.
        """

    @classmethod
    def create(cls, ctx: ServerContext) -> TokenVerificationStrategy:
        """Build the strategy at startup from the server context (``ctx.settings`` holds its settings).

        The default takes no settings: it returns ``cls()``.
        """
        return cls()

    @classmethod  # noqa: B027  # an optional hook, not abstract
    def check_settings(cls, settings: Any) -> None:
        """Raise ``ConfigError`` (listing every problem) if the strategy's settings are invalid.

        Called once with the loaded settings (the Dynaconf object ``ctx.settings`` will be) before
        the server binds any port, so a bad setting is a configuration error (CLI exit code 2) rather
        than a failed start. Does nothing by default.
        """


def _digest(token: str) -> bytes:
    # surrogatepass: a str that came through any decoding path can always be hashed
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class EnumeratedTokenVerification(TokenVerificationStrategy):
    """Accepts any of a fixed list of secret tokens: ``[enumerated_tokens] tokens``.

    Tokens are compared in constant time: the SHA-256 digest of every configured token is computed
    once at startup; a presented token is hashed and compared with every digest through
    ``hmac.compare_digest``, the results OR-ed together without stopping at a match. Comparing
    digests makes every comparison the same length, so the time taken reveals neither the length
    of a configured token, nor how much of it a guess got right, nor which token matched; it only
    depends on how many tokens are configured, which is not a secret.

    ``verify`` returns None: a plain shared secret says nothing about who holds it.
    """

    __slots__ = ("_digests",)

    def __init__(self, allowed_tokens: Iterable[str]) -> None:
        self._digests = tuple(_digest(token) for token in allowed_tokens)
        if not self._digests:
            raise ValueError("EnumeratedTokenVerification needs at least one token")

    def verify(self, call_info: pyarrow.flight.CallInfo, token: str) -> None:
        presented = _digest(token)
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(known, presented)
        if not matched:
            raise pyarrow.flight.FlightUnauthenticatedError("the token is not valid")

    @classmethod
    def create(cls, ctx: ServerContext) -> EnumeratedTokenVerification:
        return cls(read_enumerated_tokens(ctx.settings))

    @classmethod
    def check_settings(cls, settings: Any) -> None:
        read_enumerated_tokens(settings)


def read_enumerated_tokens(settings: Any) -> list[str]:
    """The configured tokens, stripped (presented tokens are stripped too), or ConfigError.

    Messages never show a value: every value in this setting is a secret.
    """
    key = f"{ENUMERATED_TOKENS_SECTION}.tokens"
    env = env_var_name(ENUMERATED_TOKENS_SECTION, "tokens")
    try:
        raw = settings.get(key)
    except Exception as e:  # a Dynaconf @token that cannot be evaluated; its text may hold a secret
        raise ConfigError([f"{key}: cannot evaluate value: {type(e).__name__} (env {env})"]) from None
    if isinstance(raw, str) and not raw.strip():
        raw = None
    if raw is None or (isinstance(raw, (list, tuple)) and not raw):
        raise ConfigError(
            [
                f"{key}: token authentication with {DEFAULT_STRATEGY} needs at least one token; "
                f'set the environment variable {env}=\'["<token>"]\' or put tokens = ["<token>"] '
                f"into the [{ENUMERATED_TOKENS_SECTION}] section of a config file"
            ]
        )
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(
            [
                f'{key}: expected a list of tokens such as \'["<token-1>", "<token-2>"]\', '
                f"got a {type(raw).__name__} (the value is not shown: it is a secret) (env {env})"
            ]
        )
    tokens: list[str] = []
    problems: list[str] = []
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, str):
            problems.append(
                f"{key}: token #{number} is a {type(item).__name__}, expected a string (env {env})"
            )
        elif not item.strip():
            problems.append(f"{key}: token #{number} is empty (env {env})")
        else:
            tokens.append(item.strip())
    if problems:
        raise ConfigError(problems)
    return tokens
