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
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import pyarrow
import pyarrow.flight
import structlog

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.tasks.task_error import TaskError

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

    Use :meth:`for_data` (or :meth:`for_table` / :meth:`for_reader`) for Arrow data. Subclass it
    when the result needs special handling, as in the original package: call
    ``super().__init__(single_use_data=...)`` and implement :meth:`get_schema`, :meth:`_get_data`
    (the data: a Table, a RecordBatchReader, a RecordBatch, or an iterable of those) and
    :meth:`_close` (release what the data holds; called exactly once, after the last reader).
    :meth:`acquire_data` and :meth:`close` are provided and not meant to be overridden.

    Any number of DoGets may read a repeatable result at the same time; ``close`` waits for them.
    """

    def __init__(self, single_use_data: bool = False) -> None:
        self._single_use_data = single_use_data
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._consumed = False
        self._closed = False
        self._close_callbacks: list[Callable[[], None]] = []

    @property
    def single_use_data(self) -> bool:
        """True if the data can be read only once (a live stream); a second DoGet is then refused."""
        return self._single_use_data

    @abc.abstractmethod
    def get_schema(self) -> pyarrow.Schema:
        """Schema of the data; goes into the FlightInfo and into the stream of an iterable of batches."""

    @abc.abstractmethod
    def _get_data(self) -> ArrowData | Iterable[Any]:
        """The data; called once per reader (once in all for single-use data)."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the data's resources; called once, when no reader holds the data any more."""

    @property
    def nbytes(self) -> int:
        """Bytes of Arrow data this result keeps in memory while stored (0 when unknown or streamed).

        The executor's memory budget for stored results counts this; results built with
        :meth:`for_table` report the table's size.
        """
        return 0

    def acquire_data(self) -> tuple[DataLock, ArrowData | Iterable[Any]]:
        """Hand out the data with a lock that is already held by the caller, who releases it when done.

        Raises ``FlightServerError`` with ErrorInfo COMMAND_RESULT_CONSUMED when single-use data
        was handed out already, and INVALID_TICKET once the result is closed.
        """
        with self._cond:
            # Consumed before closed: a single use result is closed right after its DoGet, and the
            # client asking again should learn that it was consumed, not that its ticket is bad.
            if self._single_use_data and self._consumed:
                raise ErrorInfo.for_reason(
                    ErrorCode.COMMAND_RESULT_CONSUMED,
                    "The result was streamed already and can be read only once.",
                ).to_server_error()
            if self._closed:
                raise ErrorInfo.for_reason(
                    ErrorCode.INVALID_TICKET, "The result is no longer available."
                ).to_server_error()
            self._readers += 1
            self._consumed = True
        try:
            return _ReadLock(self), self._get_data()
        except BaseException:
            self._release_reader()
            raise

    def _release_reader(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def close(self) -> None:
        """Release the data once no reader holds it; idempotent. Called by the executor when the
        result is evicted, and after a DoGet of single use data."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.wait_for(lambda: self._readers == 0)
            callbacks, self._close_callbacks = self._close_callbacks, []
        try:
            self._close()
        finally:
            for callback in callbacks:
                callback()

    def add_close_callback(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the result is closed (at once if it is closed already); it must not
        raise. A subclass that did not call ``super().__init__()`` cannot tell: nothing is registered."""
        cond = getattr(self, "_cond", None)
        if cond is None:
            return
        with cond:
            if not self._closed:
                self._close_callbacks.append(callback)
                return
        callback()

    @staticmethod
    def for_data(data: ArrowData, on_close: Callable[[], None] | None = None) -> FlightDataTaskResult:
        """Wrap a Table (read any number of times) or a RecordBatchReader (read once).

        ``on_close`` runs once when the result is closed, after the last reader finished (and after
        a reader was closed): the place to release what produced the data.
        """
        if isinstance(data, (pyarrow.Table, pyarrow.RecordBatchReader)):
            return _ArrowDataResult(data, on_close=on_close)
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
    """One reader's hold on a result; releasing twice is harmless so that a failure path and a
    call finalizer may both release it."""

    __slots__ = ("_released", "_result")

    def __init__(self, result: FlightDataTaskResult) -> None:
        self._result = result
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._result._release_reader()


class _ArrowDataResult(FlightDataTaskResult):
    """A Table (repeatable) or a RecordBatchReader (single use)."""

    def __init__(self, data: ArrowData, on_close: Callable[[], None] | None) -> None:
        super().__init__(single_use_data=isinstance(data, pyarrow.RecordBatchReader))
        self._data: ArrowData | None = data
        self._schema = data.schema
        self._on_close = on_close

    def get_schema(self) -> pyarrow.Schema:
        return self._schema

    @property
    def nbytes(self) -> int:
        data = self._data
        return data.nbytes if isinstance(data, pyarrow.Table) else 0

    def _get_data(self) -> ArrowData:
        assert self._data is not None, "acquire_data refuses closed results"
        return self._data

    def _close(self) -> None:
        data, self._data = self._data, None
        on_close, self._on_close = self._on_close, None
        try:
            if isinstance(data, pyarrow.RecordBatchReader):
                data.close()
        finally:
            if on_close is not None:
                on_close()


@dataclass
class ListFlightsTaskResult:
    """Result of a task that answers ListFlights: FlightInfos rather than data."""

    flight_infos: tuple[pyarrow.flight.FlightInfo, ...]

    def __post_init__(self) -> None:
        self.flight_infos = tuple(self.flight_infos)

    def as_generator(self) -> Generator[pyarrow.flight.FlightInfo, None, None]:
        yield from self.flight_infos

    def close(self) -> None:
        """Nothing to release; present so that the executor closes every result the same way."""


TaskResult: TypeAlias = FlightDataTaskResult | ListFlightsTaskResult
"""What a successful :meth:`Task.run` returns."""


@dataclass(frozen=True)
class TaskExecutionResult:
    """How a task ended: ``result`` when it produced one, else ``cancelled`` or ``error``.

    ``cmd`` is the task's command, handed back so that the FlightInfo built from the result can carry
    the descriptor the client asked with.
    """

    task_id: str
    cmd: bytes
    result: TaskResult | None
    cancelled: bool
    error: TaskError | None
