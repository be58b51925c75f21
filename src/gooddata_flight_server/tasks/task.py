"""A unit of long-running work, and the error it may end with.

A data service subclasses :class:`Task`, implements :meth:`Task.run` and submits instances to the
server's task executor. The executor runs the task on one of its threads; the task reports back by
returning a result, returning a :class:`TaskError`, or raising.
"""

from __future__ import annotations

import abc
import os
import threading
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING

import pyarrow.flight
import structlog

from gooddata_flight_server.errors import ErrorFactory, ErrorInfo

if TYPE_CHECKING:
    from gooddata_flight_server.tasks.results import TaskResult

__all__ = ["Task", "TaskError"]

log = structlog.get_logger(__name__)


class TaskError:
    """How a task failed, in the form a Flight client receives it.

    ``error_info`` travels to the client as is (see :meth:`as_flight_error`), so it must not hold
    anything the client may not see. The executor honours that for the errors it builds itself: when
    a task raises, the traceback goes to the server log and the ErrorInfo only names the exception.

    ``client_error`` says who is at fault:

    - ``True``: the request was wrong (bad argument, unknown dataset...). Every part of the
      ErrorInfo, ``detail`` included, was written for the client. The executor logs such failures
      quietly (no traceback, not at error level): they are not the server's problem.
    - ``False`` (default): the server failed. ``detail`` may hold server internals if whoever
      built the ErrorInfo put them there (e.g. ``ErrorInfo.for_exc(..., include_traceback=True)``);
      :meth:`to_client_error` drops it.

    ``error_factory`` picks the Flight status the client sees (``FlightServerError`` by default;
    ``FlightUnavailableError`` for a retryable condition, for example).
    """

    __slots__ = ("_client_error", "_error_factory", "_error_info")

    def __init__(
        self,
        error_info: ErrorInfo,
        error_factory: ErrorFactory = pyarrow.flight.FlightServerError,
        client_error: bool = False,
    ) -> None:
        self._error_info = error_info
        self._error_factory = error_factory
        self._client_error = client_error

    @property
    def error_info(self) -> ErrorInfo:
        return self._error_info

    @property
    def error_factory(self) -> ErrorFactory:
        return self._error_factory

    @property
    def client_error(self) -> bool:
        return self._client_error

    def as_flight_error(self) -> pyarrow.flight.FlightError:
        """The Flight exception carrying the whole ErrorInfo; raise it to send the error to a client.

        ``do_get_task_result`` raises this one, so a client sees the same error whether it learns
        of the failure from GetFlightInfo or from DoGet.
        """
        return self._error_info.to_flight_error(self._error_factory)

    def to_client_error(self) -> pyarrow.flight.FlightError:
        """Like :meth:`as_flight_error`, minus ``detail`` unless this is a client error.

        For services that put tracebacks or other internals into the detail of server-side errors
        for their own logs, yet answer clients with the message and code only.
        """
        info = self._error_info
        if not self._client_error and info.detail is not None:
            info = info.copy().with_detail(None)
        return info.to_flight_error(self._error_factory)

    def __repr__(self) -> str:
        return (
            f"TaskError(error_info={self._error_info!r}, "
            f"error_factory={getattr(self._error_factory, '__name__', self._error_factory)!s}, "
            f"client_error={self._client_error!r})"
        )


class Task(abc.ABC):
    """Long-running work that produces Flight data (or a list of flights).

    Subclasses implement :meth:`run`. Cancellation is cooperative: :meth:`cancel` only raises a
    flag, and ``run`` calls :meth:`check_cancelled` at convenient points (it raises
    ``concurrent.futures.CancelledError``, which the executor turns into a cancelled outcome). Work
    that cannot be interrupted -- typically a commit -- first calls :meth:`switch_non_cancellable`;
    from then on cancelling fails instead of leaving the work half done.

    ``cmd`` is the raw command the task serves: the executor bounces it back in the execution
    result so that the service can put it into the FlightInfo's descriptor.
    """

    def __init__(self, cmd: bytes, cancellable: bool = True, task_id: str | None = None) -> None:
        self._cmd = cmd
        self._task_id = os.urandom(16).hex() if task_id is None else task_id  # 32 hex digits
        self._cancellable = cancellable
        self._cancelled = False
        self._lock = threading.Lock()

    @property
    def task_id(self) -> str:
        """Identifies the task in the executor; 32 hex characters unless given to the constructor."""
        return self._task_id

    @property
    def cmd(self) -> bytes:
        return self._cmd

    @property
    def cancellable(self) -> bool:
        return self._cancellable

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def check_cancelled(self) -> None:
        """Raise ``concurrent.futures.CancelledError`` if the task was cancelled; call it from ``run``."""
        if self._cancelled:
            raise CancelledError(f"task {self._task_id} was cancelled")

    def cancel(self) -> bool:
        """Ask the task to stop; False if it is not cancellable (any more).

        True if the task is (now or already) cancelled. :meth:`on_task_cancel` runs exactly once, on
        the thread whose call cancelled the task, outside the task's lock, so the hook may take its
        time or call back into the task.
        """
        with self._lock:
            if not self._cancellable:
                return False
            if self._cancelled:
                return True
            self._cancelled = True
        try:
            self.on_task_cancel()
        except Exception:
            # The task is cancelled regardless: the hook only speeds it up.
            log.exception("task_cancel_hook_failed", task_id=self._task_id)
        return True

    def switch_non_cancellable(self) -> bool:
        """Make the task non-cancellable; False if it was cancelled already (then stop working)."""
        with self._lock:
            if self._cancelled:
                return False
            self._cancellable = False
            return True

    def on_task_cancel(self) -> None:  # noqa: B027  # an optional hook, not abstract on purpose
        """Called once when the task is cancelled, e.g. to interrupt a blocking call ``run`` waits in.

        May run on any thread, concurrently with ``run``. Does nothing by default.
        """

    def on_task_error(self, error: Exception) -> TaskError | None:
        """Called on the worker thread when ``run`` raised ``error``; return a TaskError to replace
        the executor's default mapping (see the executor's docs), or None to keep it.

        Not called for cancellation nor for a TaskError that ``run`` returned.
        """
        return None

    @abc.abstractmethod
    def run(self) -> TaskResult | TaskError:
        """Do the work, on one of the executor's threads, and return the result or how it failed.

        Raising is fine too: ``ValueError`` means a bad argument, a Flight error is sent to the
        client as it is, anything else is a failure of the server.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_id={self._task_id!r}, cancelled={self._cancelled!r})"
