"""What a task produces, and what the executor reports when a task is done.

Results hold resources (memory, open streams) that must be released exactly once, and only after
every reader has finished with them: the executor evicts a result after its TTL while a DoGet may
still be streaming it. So reading goes through :meth:`FlightDataTaskResult.acquire_data`, which
hands out the data together with a lock the reader holds until it is done, and
:meth:`FlightDataTaskResult.close` waits for those locks.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeAlias

import pyarrow
import pyarrow.flight
import structlog

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.tasks.task import TaskError

__all__ = [
    "ArrowData",
    "DataLock",
    "FlightDataTaskResult",
    "ListFlightsTaskResult",
    "TaskExecutionResult",
    "TaskResult",
]

log = structlog.get_logger(__name__)

ArrowData: TypeAlias = pyarrow.Table | pyarrow.RecordBatchReader
"""Data a task may return: a Table can be read any number of times, a RecordBatchReader once."""


class DataLock(Protocol):
    """The lock :meth:`FlightDataTaskResult.acquire_data` returns already held; a ``threading.Lock``
    fits. The reader calls ``release()`` once when it has finished with the data."""

    def release(self) -> None: ...


class FlightDataTaskResult(abc.ABC):
    """A task result that a DoGet streams to the client.

    Use :meth:`for_data` (or :meth:`for_table` / :meth:`for_reader`) for Arrow data. Implement this
    class when the result needs special handling, e.g. data produced as an iterable of record
    batches, or resources to release when the result goes away.
    """

    @abc.abstractmethod
    def get_schema(self) -> pyarrow.Schema:
        """Schema of the data; goes into the FlightInfo and into the stream of an iterable of batches."""

    @property
    @abc.abstractmethod
    def single_use_data(self) -> bool:
        """True if the data can be read only once (a live stream); a second DoGet is then refused."""

    @abc.abstractmethod
    def acquire_data(self) -> tuple[DataLock, ArrowData | Iterable[pyarrow.RecordBatch]]:
        """Hand out the data with a lock that is already held by the caller, who releases it when done.

        An implementation raises ``ErrorInfo(COMMAND_RESULT_CONSUMED).to_server_error()`` when single
        use data was handed out already, and ``ErrorInfo(INVALID_TICKET).to_server_error()`` once the
        result is closed.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the data once no reader holds its lock; idempotent. Called by the executor when
        the result is evicted, and after a DoGet of single use data."""

    @staticmethod
    def for_data(data: ArrowData, on_close: Callable[[], None] | None = None) -> FlightDataTaskResult:
        """Wrap a Table (read any number of times) or a RecordBatchReader (read once).

        ``on_close`` runs once when the result is closed, after the last reader finished (and after
        a reader was closed): the place to release what produced the data.
        """
        if isinstance(data, pyarrow.Table):
            return _ArrowDataResult(data, single_use=False, on_close=on_close)
        if isinstance(data, pyarrow.RecordBatchReader):
            return _ArrowDataResult(data, single_use=True, on_close=on_close)
        raise ValueError(
            f"cannot make a task result of {type(data).__module__}.{type(data).__qualname__}; "
            "expected a pyarrow.Table or a pyarrow.RecordBatchReader"
        )

    @staticmethod
    def for_table(table: pyarrow.Table, on_close: Callable[[], None] | None = None) -> FlightDataTaskResult:
        return FlightDataTaskResult.for_data(table, on_close)

    @staticmethod
    def for_reader(
        reader: pyarrow.RecordBatchReader, on_close: Callable[[], None] | None = None
    ) -> FlightDataTaskResult:
        return FlightDataTaskResult.for_data(reader, on_close)


class _ReadLock:
    """One reader's hold on an :class:`_ArrowDataResult`; releasing twice is harmless so that a
    failure path and a call finalizer may both release it."""

    __slots__ = ("_released", "_result")

    def __init__(self, result: _ArrowDataResult) -> None:
        self._result = result
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._result._release_reader()


class _ArrowDataResult(FlightDataTaskResult):
    """Counts readers instead of serialising them: any number of DoGets may stream one Table at the
    same time, and ``close`` waits until the count drops to zero."""

    def __init__(self, data: ArrowData, single_use: bool, on_close: Callable[[], None] | None) -> None:
        self._data: ArrowData | None = data
        self._schema = data.schema
        self._single_use = single_use
        self._on_close = on_close
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._consumed = False
        self._closed = False

    def get_schema(self) -> pyarrow.Schema:
        return self._schema

    @property
    def single_use_data(self) -> bool:
        return self._single_use

    def acquire_data(self) -> tuple[DataLock, ArrowData]:
        with self._cond:
            # Consumed before closed: a single use result is closed right after its DoGet, and the
            # client asking again should learn that it was consumed, not that its ticket is bad.
            if self._single_use and self._consumed:
                raise ErrorInfo.for_reason(
                    ErrorCode.COMMAND_RESULT_CONSUMED,
                    "The result was streamed already and can be read only once.",
                ).to_server_error()
            if self._closed or self._data is None:
                raise ErrorInfo.for_reason(
                    ErrorCode.INVALID_TICKET, "The result is no longer available."
                ).to_server_error()
            self._readers += 1
            self._consumed = True
            return _ReadLock(self), self._data

    def _release_reader(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.wait_for(lambda: self._readers == 0)
            data, self._data = self._data, None
            on_close, self._on_close = self._on_close, None
        try:
            if isinstance(data, pyarrow.RecordBatchReader):
                data.close()
        finally:
            if on_close is not None:
                on_close()


class ListFlightsTaskResult:
    """Result of a task that answers ListFlights: FlightInfos rather than data."""

    __slots__ = ("_flight_infos",)

    def __init__(self, flight_infos: Iterable[pyarrow.flight.FlightInfo]) -> None:
        self._flight_infos = list(flight_infos)

    @property
    def flight_infos(self) -> list[pyarrow.flight.FlightInfo]:
        return self._flight_infos

    def close(self) -> None:
        """Nothing to release; present so that the executor closes every result the same way."""


TaskResult: TypeAlias = FlightDataTaskResult | ListFlightsTaskResult
"""What a successful :meth:`Task.run` returns."""


@dataclass(frozen=True)
class TaskExecutionResult:
    """How a task ended: exactly one of ``result``, ``cancelled`` or ``error``.

    ``cmd`` is the task's command, handed back so that the FlightInfo built from the result can carry
    the descriptor the client asked with.
    """

    task_id: str
    cmd: bytes
    result: TaskResult | None
    cancelled: bool
    error: TaskError | None

    def __post_init__(self) -> None:
        outcomes = (self.result is not None) + self.cancelled + (self.error is not None)
        if outcomes != 1:
            raise ValueError(
                f"a task execution has exactly one outcome (result, cancelled or error), got {outcomes}: "
                f"result={self.result!r}, cancelled={self.cancelled!r}, error={self.error!r}"
            )
