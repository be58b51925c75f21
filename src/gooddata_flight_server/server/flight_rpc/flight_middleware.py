"""Compatibility: the original package's module path; see ``gooddata_flight_server.rpc.middleware``."""

from gooddata_flight_server.rpc.middleware import CallFinalizer, CallInfo

__all__ = ["CallFinalizer", "CallInfo"]
