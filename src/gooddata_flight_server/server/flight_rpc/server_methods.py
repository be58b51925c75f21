"""Compatibility: the original package's module path; see ``gooddata_flight_server.methods``."""

from gooddata_flight_server.methods import FlightServerMethods

__all__ = ["FlightServerMethods"]
