"""The two refusals of the Flight SQL layer: a request it cannot read, and one it does not serve."""

from __future__ import annotations

import pyarrow.flight

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.errors.classify import UnimplementedStatus

__all__ = ["bad_request", "not_supported"]


def bad_request(msg: str) -> pyarrow.flight.FlightServerError:
    """The request is malformed (BAD_ARGUMENT with an ErrorInfo); ``msg`` names what is wrong."""
    return ErrorInfo.for_reason(ErrorCode.BAD_ARGUMENT, msg).to_user_error()


def not_supported(what: str) -> UnimplementedStatus:
    """``what`` (a command, an action) is valid Flight SQL that this service does not serve.

    An ``UnimplementedStatus`` rather than a Flight error carrying an ErrorInfo with code
    NOT_IMPLEMENTED: it is the only error pyarrow sends with the gRPC status UNIMPLEMENTED, and
    Flight SQL clients act on that status (ADBC turns it into ``NotSupportedError`` and, when
    preparing a statement is not supported, runs the query without preparing it; any other status
    fails the query). pyarrow cannot attach ``extra_info`` to that status, so the message says it all.
    """
    return UnimplementedStatus(f"{what} is not supported by this Flight SQL service.")
