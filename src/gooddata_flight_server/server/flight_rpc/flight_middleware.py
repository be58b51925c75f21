"""Compatibility: the original package's module path; see ``gooddata_flight_server.rpc.call``."""

from gooddata_flight_server.rpc.call import CallFinalizer, CallInfo

__all__ = ["CallFinalizer", "CallInfo"]
