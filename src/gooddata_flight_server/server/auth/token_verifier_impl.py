"""Compatibility: the original package's module path; see ``gooddata_flight_server.auth.strategy``."""

from gooddata_flight_server.auth.strategy import EnumeratedTokenVerification

__all__ = ["EnumeratedTokenVerification"]
