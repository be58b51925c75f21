"""How a task failed, in the form a Flight client receives it."""

from __future__ import annotations

import dataclasses

import pyarrow.flight

from gooddata_flight_server.errors import ErrorFactory, ErrorInfo

__all__ = ["TaskError"]


@dataclasses.dataclass(frozen=True)
class TaskError:
    """How a task failed: the ErrorInfo the client gets and the Flight error class that carries it.

    ``error_info`` travels to the client as is (see :meth:`as_flight_error`), so it must not hold
    anything the client may not see. The executor honours that for the errors it builds itself: when
    a task raises, the traceback goes to the server log and the ErrorInfo only names the exception.
    The exception itself is not kept: its traceback would hold every frame's locals alive for as
    long as the outcome is stored.

    ``error_factory`` picks the Flight status the client sees (``FlightServerError`` by default;
    ``FlightUnavailableError`` for a retryable condition, for example). ``client_error`` says the
    request was at fault (bad argument, unknown dataset...): such failures are logged quietly and
    not counted as task errors, they are not the server's problem.
    """

    error_info: ErrorInfo
    error_factory: ErrorFactory = pyarrow.flight.FlightServerError
    client_error: bool = False

    def as_flight_error(self, *, for_client: bool = False) -> pyarrow.flight.FlightError:
        """The Flight exception carrying the ErrorInfo; raise it to send the error to a client.

        With ``for_client`` the ``detail`` is left out unless the client is at fault: the detail of
        a server-side failure may hold internals (a traceback from ``ErrorInfo.for_exc``) that are
        for the server log. ``do_get_task_result`` sends errors that way.
        """
        info = self.error_info
        if for_client and not self.client_error and info.detail is not None:
            info = info.copy().with_detail(None)
        return info.to_flight_error(self.error_factory)

    def to_client_error(self) -> TaskError:
        """A copy marked as the client's fault (``client_error=True``), as in the original package."""
        return dataclasses.replace(self, client_error=True)

    def __repr__(self) -> str:
        return (
            f"TaskError(error_info={self.error_info!r}, "
            f"error_factory={getattr(self.error_factory, '__name__', self.error_factory)!s}, "
            f"client_error={self.client_error!r})"
        )
