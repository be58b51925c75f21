"""An opinionated, production-ready Apache Arrow Flight RPC server.

Write the Flight methods of a data service; the server brings configuration, authentication, TLS,
long-running tasks, structured errors, health checks, metrics, tracing, logging and a clean
lifecycle. Typical use::

    import gooddata_flight_server as gf

    @gf.flight_server_methods
    def my_service(ctx: gf.ServerContext) -> gf.FlightServerMethods:
        return MyMethods(ctx)
"""

from importlib.metadata import PackageNotFoundError, version

from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.errors import ErrorCode, ErrorInfo, RetryInfo
from gooddata_flight_server.health import ModuleHealthStatus, ServerHealthMonitor
from gooddata_flight_server.methods import (
    FlightServerMethods,
    FlightServerMethodsFactory,
    flight_server_methods,
)
from gooddata_flight_server.rpc.middleware import CallFinalizer, CallInfo
from gooddata_flight_server.server import GoodDataFlightServer, create_server
from gooddata_flight_server.settings import AuthenticationMethod, OtelConfig, OtelExporterType, ServerConfig

try:
    __version__ = version("gooddata-flight-server")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "AuthenticationMethod",
    "CallFinalizer",
    "CallInfo",
    "ErrorCode",
    "ErrorInfo",
    "FlightServerMethods",
    "FlightServerMethodsFactory",
    "GoodDataFlightServer",
    "ModuleHealthStatus",
    "OtelConfig",
    "OtelExporterType",
    "RetryInfo",
    "ServerConfig",
    "ServerContext",
    "ServerHealthMonitor",
    "__version__",
    "create_server",
    "flight_server_methods",
]
