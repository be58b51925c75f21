"""Error codes and the structured error payload (``ErrorInfo``) that travels with every Flight error.

The module layout is the original package's: ``errors.error_code`` and ``errors.error_info``.
"""

from gooddata_flight_server.errors.error_code import ErrorCode
from gooddata_flight_server.errors.error_info import ErrorFactory, ErrorInfo, RetryInfo

__all__ = ["ErrorCode", "ErrorFactory", "ErrorInfo", "RetryInfo"]
