"""task_result_stream (do_get_task_result) without sockets: calls opened and ended by the real
RPC edge, behind a stand-in for pyarrow's call context."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow
import pyarrow.flight
import pytest

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.rpc.call import CallInfo
from gooddata_flight_server.rpc.edge import Edge
from gooddata_flight_server.rpc.gate import Gate
from gooddata_flight_server.rpc.task_stream import _released_at_end, task_result_stream
from gooddata_flight_server.tasks import (
    FlightDataTaskResult,
    ListFlightsTaskResult,
    TaskError,
    TaskExecutionResult,
    TaskExecutor,
)

_TABLE = pyarrow.table({"col1": [1, 2, 3]})


def _open_call() -> CallInfo:
    """A DoGet call admitted by the server's edge; the test ends it (``call_completed``) as pyarrow would."""
    gate = Gate()
    gate.open()
    return Edge(gate).start_call(pyarrow.flight.CallInfo(pyarrow.flight.FlightMethod.DO_GET), {})


class _Context:
    """Stands in for pyarrow's ServerCallContext: only get_middleware is used."""

    def __init__(self, call: CallInfo | None) -> None:
        self.call = call

    def get_middleware(self, key: str) -> object:
        return self.call if key == "call_info" else None


class _Executor(TaskExecutor):
    """Answers wait_for_result from a dict; the rest is not used by the stream."""

    def __init__(self, outcomes: dict[str, TaskExecutionResult]) -> None:
        self.outcomes = outcomes

    def submit(self, task: object) -> None:
        raise AssertionError

    def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskExecutionResult | None:
        return self.outcomes.get(task_id)

    def cancel(self, task_id: str) -> bool:
        raise AssertionError

    def close_result(self, task_id: str) -> bool:
        raise AssertionError

    def get_task_submitted_timestamp(self, task_id: str) -> float | None:
        raise AssertionError


class _Recording(FlightDataTaskResult):
    """A custom result written the original package's way (``_get_data``/``_close``) that tells
    whether a reader holds it and counts closes."""

    def __init__(self, data: object, single_use: bool = False) -> None:
        super().__init__(single_use_data=single_use)
        self.data = data
        self.closes = 0

    def get_schema(self) -> pyarrow.Schema:
        return _TABLE.schema

    def _get_data(self) -> object:
        return self.data

    def _close(self) -> None:
        self.closes += 1

    @property
    def held(self) -> bool:
        return self._readers > 0


def _stream(outcome: TaskExecutionResult, finalizer: CallInfo | None) -> pyarrow.flight.FlightDataStream:
    return task_result_stream(_Context(finalizer), _Executor({"t": outcome}), "t")  # type: ignore[arg-type]


def _ok(result: FlightDataTaskResult | ListFlightsTaskResult) -> TaskExecutionResult:
    return TaskExecutionResult("t", b"cmd", result, False, None)


def _code_of(call: pytest.ExceptionInfo[pyarrow.flight.FlightError]) -> int:
    return ErrorInfo.from_pyarrow_error(call.value).code


def test_unknown_task_is_invalid_ticket() -> None:
    """An unknown or expired task id is a FlightServerError with INVALID_TICKET."""
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        task_result_stream(_Context(_open_call()), _Executor({}), "missing")  # type: ignore[arg-type]
    assert _code_of(e) == ErrorCode.INVALID_TICKET


def test_task_error_is_raised_as_its_flight_error() -> None:
    """A failed task's DoGet raises the task's own Flight error."""
    info = ErrorInfo.for_reason(ErrorCode.CUSTOM_START, "bad")
    outcome = TaskExecutionResult("t", b"c", None, False, TaskError(info, pyarrow.flight.FlightTimedOutError))
    with pytest.raises(pyarrow.flight.FlightTimedOutError) as e:
        _stream(outcome, _open_call())
    assert ErrorInfo.from_pyarrow_error(e.value) == info


def test_cancelled_task_is_command_cancelled() -> None:
    """A cancelled task's DoGet is a FlightServerError with COMMAND_CANCELLED."""
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        _stream(TaskExecutionResult("t", b"c", None, True, None), _open_call())
    assert _code_of(e) == ErrorCode.COMMAND_CANCELLED


def test_result_that_is_not_flight_data_is_internal_error() -> None:
    """A result that is not Flight data cannot be streamed: INTERNAL_ERROR, as in the original."""
    with pytest.raises(pyarrow.flight.FlightInternalError) as e:
        _stream(_ok(ListFlightsTaskResult(())), _open_call())
    assert _code_of(e) == ErrorCode.INTERNAL_ERROR


def test_table_is_locked_until_call_ends() -> None:
    """A Table streams as RecordBatchStream; its lock is held until the call ends, and it stays open."""
    result = _Recording(_TABLE)
    finalizer = _open_call()
    stream = _stream(_ok(result), finalizer)
    assert isinstance(stream, pyarrow.flight.RecordBatchStream)
    assert result.held
    finalizer.call_completed(None)
    assert not result.held
    assert result.closes == 0


def test_single_use_reader_is_closed_when_call_ends_even_on_error() -> None:
    """Single use data is released and closed when the call ends, also when it ends with an error."""
    reader = pyarrow.RecordBatchReader.from_batches(_TABLE.schema, _TABLE.to_batches())
    result = _Recording(reader, single_use=True)
    finalizer = _open_call()
    stream = _stream(_ok(result), finalizer)
    assert isinstance(stream, pyarrow.flight.GeneratorStream)  # behind the error boundary while it streams
    finalizer.call_completed(pyarrow.flight.FlightCancelledError("client went away"))
    assert not result.held
    assert result.closes == 1


def test_iterable_of_batches_streams_with_result_schema() -> None:
    """An iterable of record batches streams as a GeneratorStream."""
    result = _Recording(_TABLE.to_batches())
    finalizer = _open_call()
    assert isinstance(_stream(_ok(result), finalizer), pyarrow.flight.GeneratorStream)
    finalizer.call_completed(None)
    assert not result.held


def test_built_in_reader_read_twice_is_consumed() -> None:
    """The second DoGet of a RecordBatchReader result is COMMAND_RESULT_CONSUMED."""
    result = FlightDataTaskResult.for_reader(
        pyarrow.RecordBatchReader.from_batches(_TABLE.schema, _TABLE.to_batches())
    )
    finalizer = _open_call()
    _stream(_ok(result), finalizer)
    finalizer.call_completed(None)
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        _stream(_ok(result), _open_call())
    assert _code_of(e) == ErrorCode.COMMAND_RESULT_CONSUMED


def test_without_finalizer_release_is_tied_to_iteration() -> None:
    """Served without the call finalizer, the data is released when iteration ends or is abandoned."""
    result = _Recording(_TABLE, single_use=True)
    assert isinstance(_stream(_ok(result), None), pyarrow.flight.GeneratorStream)
    assert result.held

    released: list[int] = []
    batches: Iterable[pyarrow.RecordBatch] = _TABLE.to_batches()
    abandoned: Iterator[pyarrow.RecordBatch] = _released_at_end(batches, lambda: released.append(1))
    next(abandoned)
    abandoned.close()  # what dropping the generator does
    assert released == [1]
    assert list(_released_at_end(batches, lambda: released.append(2))) == batches
    assert released == [1, 2]
