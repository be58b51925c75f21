"""An opinionated, production-ready Apache Arrow Flight RPC server.

Write the Flight methods of a data service; the server brings configuration, authentication, TLS,
long-running tasks, structured errors, health checks, metrics, tracing, logging and a clean
lifecycle. Typical use::

    import gooddata_flight_server as gf

    @gf.flight_server_methods
    def my_service(ctx: gf.ServerContext) -> gf.FlightServerMethods:
        return MyMethods(ctx)
"""

from gooddata_flight_server._version import __version__
from gooddata_flight_server.auth import TokenAuthMiddleware, TokenVerificationStrategy
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.errors import ErrorCode, ErrorInfo, RetryInfo
from gooddata_flight_server.health import ModuleHealthStatus, ServerHealthMonitor
from gooddata_flight_server.methods import (
    FlightServerMethods,
    FlightServerMethodsFactory,
    flight_server_methods,
)
from gooddata_flight_server.rpc.call import CallFinalizer, CallInfo
from gooddata_flight_server.server import GoodDataFlightServer, create_server, run
from gooddata_flight_server.settings import AuthenticationMethod, OtelConfig, OtelExporterType, ServerConfig
from gooddata_flight_server.tasks import (
    ArrowData,
    FlightDataTaskResult,
    ListFlightsTaskResult,
    Task,
    TaskError,
    TaskExecutionResult,
    TaskExecutor,
    TaskResult,
    TaskWaitTimeoutError,
)

__all__ = [
    "ArrowData",
    "AuthenticationMethod",
    "CallFinalizer",
    "CallInfo",
    "ErrorCode",
    "ErrorInfo",
    "FlightDataTaskResult",
    "FlightServerMethods",
    "FlightServerMethodsFactory",
    "GoodDataFlightServer",
    "ListFlightsTaskResult",
    "ModuleHealthStatus",
    "OtelConfig",
    "OtelExporterType",
    "RetryInfo",
    "ServerConfig",
    "ServerContext",
    "ServerHealthMonitor",
    "Task",
    "TaskError",
    "TaskExecutionResult",
    "TaskExecutor",
    "TaskResult",
    "TaskWaitTimeoutError",
    "TokenAuthMiddleware",
    "TokenVerificationStrategy",
    "__version__",
    "create_server",
    "flight_server_methods",
    "run",
]
