"""Compatibility: the original package's module path; see ``gooddata_flight_server.auth.middleware``."""

from gooddata_flight_server.auth.middleware import TokenAuthMiddleware

__all__ = ["TokenAuthMiddleware"]
