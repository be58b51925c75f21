"""Task and TaskError, without an executor."""

from __future__ import annotations

import dataclasses
import re
import threading
from concurrent.futures import CancelledError

import pyarrow.flight
import pytest

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.tasks import Task, TaskError, TaskResult


class _Task(Task):
    def __init__(self, cmd: bytes = b"cmd", cancellable: bool = True, task_id: str | None = None) -> None:
        super().__init__(cmd, cancellable=cancellable, task_id=task_id)
        self.cancel_calls = 0
        self._calls_lock = threading.Lock()

    def on_task_cancel(self) -> None:
        with self._calls_lock:
            self.cancel_calls += 1

    def run(self) -> TaskResult | TaskError:
        raise AssertionError("not run in these tests")


def test_task_id_defaults_to_unique_32_hex_chars() -> None:
    """Without a task_id each task gets its own 32 hex character id."""
    first, second = _Task(), _Task()
    assert re.fullmatch(r"[0-9a-f]{32}", first.task_id)
    assert first.task_id != second.task_id


def test_task_keeps_given_id_cmd_and_cancellable() -> None:
    """The constructor arguments are exposed as they were given."""
    task = _Task(b"payload", cancellable=False, task_id="my-id")
    assert (task.task_id, task.cmd, task.cancelled) == ("my-id", b"payload", False)
    assert task.cancel() is False


def test_check_cancelled_raises_only_after_cancel() -> None:
    """check_cancelled is silent until the task is cancelled, then raises CancelledError."""
    task = _Task()
    task.check_cancelled()
    assert task.cancel() is True
    assert task.cancelled
    with pytest.raises(CancelledError):
        task.check_cancelled()


def test_cancel_calls_hook_exactly_once_under_concurrent_cancels() -> None:
    """Many threads cancelling at once all get True and the hook runs once."""
    task = _Task()
    barrier = threading.Barrier(16)
    answers: list[bool] = []

    def cancel() -> None:
        barrier.wait()
        answers.append(task.cancel())

    threads = [threading.Thread(target=cancel) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [True] * 16
    assert task.cancel_calls == 1


def test_cancel_of_non_cancellable_task_fails_without_hook() -> None:
    """A non-cancellable task refuses cancel() and the hook does not run."""
    task = _Task(cancellable=False)
    assert task.cancel() is False
    assert not task.cancelled
    assert task.cancel_calls == 0


def test_switch_non_cancellable_blocks_later_cancel() -> None:
    """After switch_non_cancellable, cancel() returns False."""
    task = _Task()
    task.switch_non_cancellable()
    assert task.cancel() is False
    task.check_cancelled()


def test_switch_non_cancellable_raises_once_cancelled() -> None:
    """A cancelled task cannot become non-cancellable: CancelledError, as in the original package,
    so that run() stops before the work that could not be undone."""
    task = _Task()
    task.cancel()
    with pytest.raises(CancelledError):
        task.switch_non_cancellable()


def test_subclass_may_use_the_names_lock_and_cancellable() -> None:
    """Task keeps its state under names a subclass of the original package's Task would not use."""

    class Mine(_Task):
        def __init__(self) -> None:
            super().__init__()
            self._lock = None
            self.cancellable = "mine"

    task = Mine()
    assert task.cancel() is True


def test_failing_cancel_hook_still_cancels() -> None:
    """An exception in on_task_cancel is logged and the task counts as cancelled."""

    class Failing(_Task):
        def on_task_cancel(self) -> None:
            raise RuntimeError("hook broke")

    task = Failing()
    assert task.cancel() is True
    assert task.cancelled


def test_on_task_error_defaults_to_none() -> None:
    """The default on_task_error keeps the executor's mapping."""
    assert _Task().on_task_error(RuntimeError("x")) is None


def test_task_error_as_flight_error_carries_info_and_type() -> None:
    """as_flight_error builds the configured Flight exception with the whole ErrorInfo."""
    info = ErrorInfo(msg="no such dataset", detail="looked in x", code=ErrorCode.BAD_ARGUMENT)
    error = TaskError(info, pyarrow.flight.FlightUnavailableError)
    flight_error = error.as_flight_error()
    assert isinstance(flight_error, pyarrow.flight.FlightUnavailableError)
    assert ErrorInfo.from_pyarrow_error(flight_error) == info


def test_task_error_defaults_to_server_error_and_not_client_error() -> None:
    """The default factory is FlightServerError and client_error is False."""
    error = TaskError(ErrorInfo.for_reason(ErrorCode.COMMAND_FAILED, "boom"))
    assert type(error.as_flight_error()) is pyarrow.flight.FlightServerError
    assert error.client_error is False
    assert error.error_factory is pyarrow.flight.FlightServerError


def test_to_client_error_is_a_copy_marked_as_the_clients_fault() -> None:
    """to_client_error returns a TaskError like this one with client_error set, as in the original."""
    info = ErrorInfo(msg="bad column", detail="column 'x' is not in the dataset", code=ErrorCode.BAD_ARGUMENT)
    error = TaskError(info, pyarrow.flight.FlightTimedOutError)
    client = error.to_client_error()
    assert (client.error_info, client.error_factory, client.client_error) == (
        info,
        pyarrow.flight.FlightTimedOutError,
        True,
    )
    assert error.client_error is False
    assert dataclasses.replace(error, client_error=True) == client
