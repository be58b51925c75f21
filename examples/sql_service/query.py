"""A SQL query as a long-running task: it runs on the server's task executor, can be cancelled, and
leaves a result that a DoGet streams.

The task runs the query until its first batch of rows is ready -- for a query with an aggregate, a
sort or a join that is where all the work happens -- and hands the rest to the DoGet as a stream,
so the service never holds a big result in memory twice. The DuckDB cursor stays open while the
result waits for its DoGet and is closed when the result is closed: after the DoGet, or when the
server evicts an unread result after ``task_result_ttl_sec``.

Cancelling interrupts the running query. DuckDB forgets an interrupt that arrives in the instant
before a query starts executing, so the cancel keeps interrupting until the execution has ended.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import CancelledError
from typing import Any

import duckdb
import pyarrow
import pyarrow.flight
from opentelemetry import trace

import gooddata_flight_server as gf

from .database import Database, arrow_reader
from .errors import ClientError, server_failure, stream_errors

__all__ = ["QueryState", "QueryTask"]

_tracer = trace.ProxyTracer("sql_service")
_INTERRUPT_EVERY_SEC = 0.05
_INTERRUPT_FOR_SEC = 10.0


class QueryState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"


class QueryTask(gf.Task):
    """Runs ``sql`` (checked by ``Database.check_query``), with ``parameters`` bound to its ``?`` or
    ``$name`` placeholders when given, and returns its rows as a single-use stream."""

    def __init__(
        self,
        database: Database,
        sql: str,
        cmd: bytes,
        batch_size: int,
        timeout_sec: float = 0.0,
        *,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        in_memory_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        super().__init__(cmd)
        self._in_memory_bytes = in_memory_bytes
        self._database = database
        self._sql = sql
        self._parameters = parameters
        self._batch_size = batch_size
        self._timeout_sec = timeout_sec
        self._guard = threading.Lock()
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._state = QueryState.QUEUED
        self._executed = threading.Event()
        self._timed_out = False
        self.submitted_at = time.time()

    @property
    def sql(self) -> str:
        return self._sql

    @property
    def state(self) -> QueryState:
        return self._state

    def run(self) -> gf.TaskResult | gf.TaskError:
        try:
            return self._run()
        finally:  # however run() ends, even before the query started (no cursor, say)
            with self._guard:
                self._state = QueryState.FINISHED

    def _run(self) -> gf.TaskResult | gf.TaskError:
        cursor = self._database.cursor()
        try:
            reader, first = self._execute(cursor)
            head, complete = self._read_ahead(reader, first)
        except ClientError as e:
            cursor.close()
            return gf.TaskError(e.info, client_error=True)  # the query is at fault: detail included
        except (CancelledError, pyarrow.flight.FlightError):
            cursor.close()
            raise
        except Exception as e:  # out of memory, I/O ...: the server's failure, told by reference only
            cursor.close()
            return server_failure(self.task_id, e)
        if complete:  # the whole result is in memory: a table, readable until it expires
            reader.close()
            cursor.close()
            return gf.FlightDataTaskResult.for_table(pyarrow.Table.from_batches(head, schema=reader.schema))
        return _StreamedResult(reader, cursor, head)

    def _read_ahead(
        self, reader: pyarrow.RecordBatchReader, first: pyarrow.RecordBatch | None
    ) -> tuple[list[pyarrow.RecordBatch], bool]:
        """Read the result while it fits into ``in_memory_bytes``: the batches read, and whether
        that is all of it. A result held in memory counts in the server's budget for stored results
        by its size; a bigger one counts what it holds and streams the rest from DuckDB on DoGet."""
        if first is None:
            return [], True
        head, size = [first], first.nbytes
        with stream_errors("The query failed while its result was read"):
            while size <= self._in_memory_bytes:
                self.check_cancelled()
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return head, True
                head.append(batch)
                size += batch.nbytes
        return head, False

    def _execute(
        self, cursor: duckdb.DuckDBPyConnection
    ) -> tuple[pyarrow.RecordBatchReader, pyarrow.RecordBatch | None]:
        with self._guard:
            # checked under the guard: a cancel either sees RUNNING and interrupts, or is seen here
            self.check_cancelled()
            self._cursor = cursor
            self._state = QueryState.RUNNING
        timer = None
        if self._timeout_sec > 0:
            timer = threading.Timer(self._timeout_sec, self._on_timeout)
            timer.daemon = True
            timer.start()
        try:
            with (
                _tracer.start_as_current_span("sql_query", attributes={"db.system": "duckdb"}),
                self._database.errors("Invalid query"),
                stream_errors("Invalid query"),
            ):
                relation = (
                    cursor.sql(self._sql)
                    if self._parameters is None
                    else cursor.sql(self._sql, params=self._parameters)
                )
                reader = arrow_reader(relation, self._batch_size)
                try:
                    first = reader.read_next_batch()
                except StopIteration:
                    first = None
                return reader, first
        except duckdb.InterruptException:
            if self._timed_out:
                raise gf.ErrorInfo.for_reason(
                    gf.ErrorCode.TIMEOUT,
                    f"The query ran longer than {self._timeout_sec:g} s (sql_service.query_timeout_sec) "
                    "and was stopped.",
                ).to_timeout_error() from None
            raise CancelledError(f"query {self.task_id} was cancelled") from None
        finally:
            if timer is not None:
                timer.cancel()
            with self._guard:
                self._state = QueryState.FINISHED
                self._cursor = None
            self._executed.set()

    def on_task_cancel(self) -> None:
        self._interrupt_until_executed()

    def _on_timeout(self) -> None:
        self._timed_out = True
        self._interrupt_until_executed()

    def _interrupt_until_executed(self) -> None:
        deadline = time.monotonic() + _INTERRUPT_FOR_SEC
        while True:
            with self._guard:
                cursor = self._cursor if self._state is QueryState.RUNNING else None
            if cursor is None:
                return
            with contextlib.suppress(duckdb.Error):
                cursor.interrupt()
            if self._executed.wait(_INTERRUPT_EVERY_SEC) or time.monotonic() > deadline:
                return


class _StreamedResult(gf.FlightDataTaskResult):
    """A result bigger than the task's ``in_memory_bytes``: the batches read ahead, then the rest from the
    DuckDB cursor as the DoGet reads it (once); the cursor is closed with the result."""

    def __init__(
        self,
        reader: pyarrow.RecordBatchReader,
        cursor: duckdb.DuckDBPyConnection,
        head: list[pyarrow.RecordBatch],
    ) -> None:
        super().__init__(single_use_data=True)
        self._reader = reader
        self._cursor = cursor
        self._head = head
        self._nbytes = sum(batch.nbytes for batch in head)

    def get_schema(self) -> pyarrow.Schema:
        return self._reader.schema

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def _get_data(self) -> pyarrow.RecordBatchReader:
        return pyarrow.RecordBatchReader.from_batches(self._reader.schema, _chain(self._head, self._reader))

    def _close(self) -> None:
        self._head = []
        try:
            self._reader.close()
        finally:
            self._cursor.close()


def _chain(head: list[pyarrow.RecordBatch], rest: pyarrow.RecordBatchReader) -> Iterator[pyarrow.RecordBatch]:
    """The batches read ahead, then the rest as DuckDB computes it; a failure of the query on the way
    reaches the DoGet caller as BAD_ARGUMENT when the query is at fault."""
    yield from head
    try:
        with stream_errors("The query failed while its result streamed"):
            yield from rest
    except ClientError as e:
        raise e.info.to_user_error() from None
