"""Task results: the built-in Arrow data results, ListFlightsTaskResult and TaskExecutionResult."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pyarrow
import pyarrow.flight
import pytest

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.tasks import (
    FlightDataTaskResult,
    ListFlightsTaskResult,
    TaskError,
    TaskExecutionResult,
)

_TABLE = pyarrow.table({"col1": [1, 2, 3]})


def _reader() -> pyarrow.RecordBatchReader:
    return pyarrow.RecordBatchReader.from_batches(_TABLE.schema, _TABLE.to_batches())


def _code(e: pyarrow.flight.FlightError) -> int:
    return ErrorInfo.from_pyarrow_error(e).code


def test_table_is_repeatable_and_readable_concurrently() -> None:
    """A Table result is not single use and hands its data to several readers at once."""
    result = FlightDataTaskResult.for_data(_TABLE)
    assert result.single_use_data is False
    assert result.get_schema() == _TABLE.schema
    lock1, data1 = result.acquire_data()
    lock2, data2 = result.acquire_data()
    assert data1 is _TABLE and data2 is _TABLE
    lock1.release()
    lock2.release()


def test_reader_is_single_use() -> None:
    """A RecordBatchReader result can be acquired once; the second time says COMMAND_RESULT_CONSUMED."""
    result = FlightDataTaskResult.for_data(_reader())
    assert result.single_use_data is True
    assert result.get_schema() == _TABLE.schema
    lock, data = result.acquire_data()
    assert data.read_all() == _TABLE
    lock.release()
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        result.acquire_data()
    assert _code(e.value) == ErrorCode.COMMAND_RESULT_CONSUMED


def test_consumed_reader_stays_consumed_after_close() -> None:
    """After a single use result is closed, asking again still says COMMAND_RESULT_CONSUMED."""
    result = FlightDataTaskResult.for_data(_reader())
    lock, _ = result.acquire_data()
    lock.release()
    result.close()
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        result.acquire_data()
    assert _code(e.value) == ErrorCode.COMMAND_RESULT_CONSUMED


def test_for_data_rejects_other_types_naming_them() -> None:
    """Anything but a Table or a RecordBatchReader is a ValueError naming the type given."""
    with pytest.raises(ValueError, match="RecordBatch"):
        FlightDataTaskResult.for_data(_TABLE.to_batches()[0])
    with pytest.raises(ValueError, match="list"):
        FlightDataTaskResult.for_data([1, 2])  # type: ignore[arg-type]


def test_for_table_and_for_reader() -> None:
    """for_table and for_reader build the repeatable and the single use result."""
    assert FlightDataTaskResult.for_table(_TABLE).single_use_data is False
    assert FlightDataTaskResult.for_reader(_reader()).single_use_data is True


def test_close_is_idempotent_and_calls_on_close_once() -> None:
    """Closing twice runs on_close once; a closed Table result answers INVALID_TICKET."""
    calls: list[int] = []
    result = FlightDataTaskResult.for_table(_TABLE, on_close=lambda: calls.append(1))
    result.close()
    result.close()
    assert calls == [1]
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        result.acquire_data()
    assert _code(e.value) == ErrorCode.INVALID_TICKET


def test_close_releases_the_reader_and_its_source() -> None:
    """Closing a reader result closes the reader and drops it, so the generator behind it ends."""
    finalized = threading.Event()

    def batches() -> Iterator[pyarrow.RecordBatch]:
        try:
            yield from _TABLE.to_batches()
        finally:
            finalized.set()

    calls: list[int] = []
    result = FlightDataTaskResult.for_reader(
        pyarrow.RecordBatchReader.from_batches(_TABLE.schema, batches()), on_close=lambda: calls.append(1)
    )
    lock, data = result.acquire_data()
    data.read_next_batch()  # the generator is suspended inside its try block now
    lock.release()
    del lock, data
    result.close()
    gc.collect()
    assert finalized.is_set()
    assert calls == [1]


def test_close_waits_for_readers() -> None:
    """close() returns only after every reader released its lock."""
    closed = threading.Event()
    result = FlightDataTaskResult.for_table(_TABLE, on_close=closed.set)
    lock1, _ = result.acquire_data()
    lock2, _ = result.acquire_data()
    closer = threading.Thread(target=result.close)
    closer.start()
    lock1.release()
    assert not closed.wait(0.05)
    lock2.release()
    assert closed.wait(5)
    closer.join(5)
    assert not closer.is_alive()


def test_lock_release_twice_counts_once() -> None:
    """Releasing the same read lock twice does not release someone else's hold."""
    closed = threading.Event()
    result = FlightDataTaskResult.for_table(_TABLE, on_close=closed.set)
    lock1, _ = result.acquire_data()
    lock2, _ = result.acquire_data()
    lock1.release()
    lock1.release()
    closer = threading.Thread(target=result.close)
    closer.start()
    assert not closed.wait(0.05)
    lock2.release()
    closer.join(5)
    assert closed.is_set()


def test_list_flights_result_holds_infos() -> None:
    """ListFlightsTaskResult keeps the FlightInfos it was given, as a tuple, and yields them from
    as_generator (the original package's API)."""
    info = pyarrow.flight.FlightInfo(
        _TABLE.schema, pyarrow.flight.FlightDescriptor.for_command(b"x"), [], -1, -1
    )
    result = ListFlightsTaskResult(iter([info]))  # type: ignore[arg-type]
    assert result.flight_infos == (info,)
    assert list(result.as_generator()) == [info]
    result.close()


def test_execution_result_with_one_outcome() -> None:
    """Each single outcome makes a valid TaskExecutionResult that keeps task_id and cmd."""
    error = TaskError(ErrorInfo.for_reason(ErrorCode.COMMAND_FAILED, "x"))
    result = FlightDataTaskResult.for_table(_TABLE)
    assert TaskExecutionResult("id", b"c", result, False, None).result is result
    assert TaskExecutionResult("id", b"c", None, True, None).cancelled is True
    failed = TaskExecutionResult("id", b"c", None, False, error)
    assert (failed.task_id, failed.cmd, failed.error) == ("id", b"c", error)
