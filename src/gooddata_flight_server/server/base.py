"""Compatibility: the original package's module path; see ``gooddata_flight_server.context`` and
``.methods``.
"""

from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.methods import FlightServerMethods, FlightServerMethodsFactory

__all__ = ["FlightServerMethods", "FlightServerMethodsFactory", "ServerContext"]
