"""A unit of long-running work.

A data service subclasses :class:`Task`, implements :meth:`Task.run` and submits instances to the
server's task executor. The executor runs the task on one of its threads; the task reports back by
returning a result, returning a :class:`TaskError`, or raising.
"""

from __future__ import annotations

import abc
import os
import threading
from concurrent.futures import CancelledError

import structlog

from gooddata_flight_server.tasks.task_error import TaskError
from gooddata_flight_server.tasks.task_result import TaskResult

__all__ = ["Task"]

log = structlog.get_logger(__name__)


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
        self._cancel_lock = threading.Lock()  # the original package's name: subclasses may use _lock

    @property
    def task_id(self) -> str:
        """Identifies the task in the executor; 32 hex characters unless given to the constructor."""
        return self._task_id

    @property
    def cmd(self) -> bytes:
        return self._cmd

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
        with self._cancel_lock:
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

    def switch_non_cancellable(self) -> None:
        """Make the task non-cancellable before work that must not be interrupted (a commit).

        Raises ``concurrent.futures.CancelledError`` if the task was cancelled already, so ``run``
        stops right there (as in the original package); the executor reports the task cancelled.
        """
        with self._cancel_lock:
            if self._cancelled:
                raise CancelledError(f"task {self._task_id} was cancelled")
            self._cancellable = False

    def on_task_cancel(self) -> None:  # noqa: B027  # an optional hook, not abstract on purpose
        """Called once when the task is cancelled, e.g. to interrupt a blocking call ``run`` waits in.

        May run on any thread, concurrently with ``run``. Does nothing by default.
        """

    def on_task_error(self, error: TaskError) -> TaskError | None:
        """Called on the worker thread when the task failed, with the TaskError the executor made
        of what ``run`` raised (or the one ``run`` returned); return a TaskError to use instead, or
        None to keep ``error``. The place to classify errors (e.g. ``error.to_client_error()``) or
        to track them. Not called for cancellation.
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
