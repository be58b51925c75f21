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

    def as_flight_error(self) -> pyarrow.flight.FlightError:
        """The Flight exception carrying the whole ErrorInfo; raise it to send the error to a client.

        ``do_get_task_result`` raises this one, so a client sees the same error whether it learns
        of the failure from GetFlightInfo or from DoGet.
        """
        return self.error_info.to_flight_error(self.error_factory)

    def to_client_error(self) -> TaskError:
        """A copy marked as the client's fault (``client_error=True``), as in the original package."""
        return dataclasses.replace(self, client_error=True)

    def __repr__(self) -> str:
        return (
            f"TaskError(error_info={self.error_info!r}, "
            f"error_factory={getattr(self.error_factory, '__name__', self.error_factory)!s}, "
            f"client_error={self.client_error!r})"
        )
