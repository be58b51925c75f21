"""Which token verification strategy runs: a built-in one by name, or user code loaded by name.

``token_verification`` names the strategy: a built-in (``EnumeratedTokenVerification``,
``JwtTokenVerification``), a module holding exactly one concrete strategy class, or
``module:ClassName``. The class is loaded and its settings checked before the server binds
(:func:`check_strategy`), and created once the server context exists (:func:`create_strategy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gooddata_flight_server.auth.jwt import JwtTokenVerification
from gooddata_flight_server.auth.strategy import (
    AuthSetupError,
    EnumeratedTokenVerification,
    TokenVerificationStrategy,
)
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.loader import LoadError, load_subclass
from gooddata_flight_server.settings import ConfigError

__all__ = ["BUILT_IN_STRATEGIES", "check_strategy", "create_strategy", "load_strategy_class"]

BUILT_IN_STRATEGIES: Mapping[str, type[TokenVerificationStrategy]] = MappingProxyType(
    {
        "EnumeratedTokenVerification": EnumeratedTokenVerification,
        "JwtTokenVerification": JwtTokenVerification,  # PyJWT is imported when it is used, not here
    }
)


def load_strategy_class(spec: str) -> type[TokenVerificationStrategy]:
    """Resolve ``token_verification``: a built-in name, ``pkg.module`` or ``pkg.module:ClassName``.

    Raises LoadError with a one-line message for each way this can fail.
    """
    built_in = BUILT_IN_STRATEGIES.get(spec.strip())
    if built_in is not None:
        return built_in
    # mypy refuses an abstract class where type[T] is expected (python/mypy#4717)
    return load_subclass(spec, TokenVerificationStrategy, "token verification")  # type: ignore[type-abstract]


def check_strategy(spec: str, settings: Any) -> type[TokenVerificationStrategy]:
    """Load the strategy named by ``spec`` and check its settings, before anything binds.

    Raises LoadError (cannot be loaded) or ConfigError (its settings are invalid).
    """
    cls = load_strategy_class(spec)
    cls.check_settings(settings)
    return cls


def create_strategy(spec: str, ctx: ServerContext) -> TokenVerificationStrategy:
    """Load the strategy named by ``spec`` and call its ``create(ctx)`` exactly once.

    ConfigError, LoadError and AuthSetupError pass through as they are (their messages are ours);
    anything else ``create`` raises becomes an AuthSetupError naming the strategy, with the
    original exception chained for the log.
    """
    cls = load_strategy_class(spec)
    label = f"{cls.__module__}:{cls.__qualname__}"
    try:
        strategy = cls.create(ctx)
    except (ConfigError, LoadError, AuthSetupError):
        raise
    except Exception as e:
        detail = " ".join(str(e).split()) or "no message"
        raise AuthSetupError(
            f"token verification strategy '{label}' failed to initialise: {type(e).__name__}: {detail}"
        ) from e
    if not isinstance(strategy, TokenVerificationStrategy):
        raise AuthSetupError(
            f"token verification strategy '{label}': create() returned {type(strategy).__name__}, "
            "expected a TokenVerificationStrategy instance"
        )
    return strategy
