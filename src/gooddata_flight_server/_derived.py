"""What the server derives from its configuration: reachability, URLs, a loggable form."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections.abc import Mapping
from typing import Any

from gooddata_flight_server.settings import AuthenticationMethod, ServerConfig

__all__ = ["loggable", "reachable_without_auth", "url_host"]


def url_host(host: str | None) -> str:
    if not host or host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def reachable_without_auth(config: ServerConfig) -> bool:
    """True when anyone on the network may call the server: no auth, no mTLS, not loopback only."""
    mutual_tls = config.tls_root_cert is not None  # read only when use_tls and use_mtls are both on
    unauthenticated = config.authentication_method is AuthenticationMethod.NoAuth and not mutual_tls
    return unauthenticated and not is_loopback(config.listen_host)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loggable(config: ServerConfig) -> dict[str, Any]:
    masked = config.without_tls()

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return dict(value)
        if isinstance(value, enum.Enum):
            return value.value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {k: plain(v) for k, v in vars(value).items()}
        return value

    return {key: plain(value) for key, value in vars(masked).items()}
