"""The Flight RPC methods of the SQL data service.

- ListFlights: one FlightInfo per table (schema, row count, a path descriptor naming the table).
  ``criteria``, when given, is a table name prefix.
- GetFlightInfo: the descriptor is a SQL SELECT (command) or a table name (path). The query runs as
  a task on the server's task executor (``task_flight_info``); the FlightInfo's endpoint carries the
  task id as its ticket, this server's advertised location (with several replicas the client comes
  back to the one that holds the result) and ``expiration_time``. With the request header
  ``x-quiver-pollable`` a long query answers POLL errors to retry with instead of blocking; the
  server answers the standard ``CancelFlightInfo`` and ``RenewFlightEndpoint`` actions for it.
- DoGet: streams a task's result (once; unread results are dropped after ``task_result_ttl_sec``).
- GetSchema: the schema of a table or of a query's result, without running the query.
- DoPut: the descriptor path names a table; the uploaded stream creates it, or is appended to it if
  the columns match. Answers with JSON metadata describing what was stored.
- DoAction: ``cancel`` (body: a task id), ``list-tables`` and ``list-queries``, each answering JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import pyarrow
import pyarrow.flight
import structlog

import gooddata_flight_server as gf

from .config import SqlServiceConfig
from .database import Database, quote_identifier
from .errors import ClientError
from .metrics import service_metrics
from .query import QueryState, QueryTask

__all__ = ["SqlServiceMethods"]

log = structlog.get_logger("sql_service")

_TASK_ID = re.compile(r"[0-9a-f]{32}")
"""How often a GetFlightInfo waiting for its query checks that its client is still there."""
_LOGGED_SQL_CHARS = 200

ACTIONS: tuple[tuple[str, str], ...] = (
    ("cancel", "Cancel a queued or running query. Body: the task id (the ticket)."),
    ("list-tables", "The tables with their row counts and columns, as JSON."),
    ("list-queries", "The queries that are queued or running, with their task ids, as JSON."),
)


@contextlib.contextmanager
def _client_errors() -> Iterator[None]:
    """Send a refused request to the client as BAD_ARGUMENT with its ErrorInfo."""
    try:
        yield
    except ClientError as e:
        raise e.info.to_user_error() from None


def _json_result(value: Any) -> pyarrow.flight.Result:
    return pyarrow.flight.Result(orjson.dumps(value))


def _short(sql: str) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= _LOGGED_SQL_CHARS else sql[: _LOGGED_SQL_CHARS - 3] + "..."


class SqlServiceMethods(gf.FlightServerMethods):
    def __init__(self, ctx: gf.ServerContext, config: SqlServiceConfig, database: Database) -> None:
        self._ctx = ctx
        self._config = config
        self._database = database
        self._metrics = service_metrics()
        self._queries: dict[str, QueryTask] = {}
        self._queries_lock = threading.Lock()
        self._submitting: set[str] = set()  # created, listed, not yet past the executor's submit

    def on_shutdown(self) -> None:
        """The server drained its calls: close the database (DuckDB checkpoints its write-ahead log);
        queries still running on cursors of their own end when the task executor stops them."""
        self._database.close()

    # -- discovery --------------------------------------------------------------------------------

    def list_flights(
        self, context: pyarrow.flight.ServerCallContext, criteria: bytes
    ) -> Iterable[pyarrow.flight.FlightInfo]:
        with _client_errors():
            try:
                prefix = criteria.decode("utf-8") if criteria else ""
            except UnicodeDecodeError:
                raise ClientError("ListFlights criteria must be a UTF-8 table name prefix.") from None
            tables = self._database.tables(prefix)
        return [
            pyarrow.flight.FlightInfo(
                schema=table.schema,
                descriptor=pyarrow.flight.FlightDescriptor.for_path(table.name),
                endpoints=[],  # GetFlightInfo with this descriptor runs the query that reads the table
                total_records=table.num_rows,
                total_bytes=-1,
            )
            for table in tables
        ]

    def get_schema(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.SchemaResult:
        with _client_errors():
            sql = self._sql_for(descriptor)
            return pyarrow.flight.SchemaResult(self._database.query_schema(sql))

    # -- queries ----------------------------------------------------------------------------------

    def get_flight_info(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.FlightInfo:
        # the framework runs the round trip: submit, wait (cancelling the query if the client goes
        # away or call_deadline_sec passes), answer the FlightInfo whose ticket is the task id and
        # whose endpoint expires with the result; with the x-quiver-pollable header it polls
        created: list[QueryTask] = []

        def create(descriptor: pyarrow.flight.FlightDescriptor) -> QueryTask:
            task = self._query_task(descriptor)  # listed from now on, submitted a moment later
            created.append(task)
            return task

        try:
            info = self.task_flight_info(context, self._ctx, descriptor, create)
        except pyarrow.flight.FlightError as e:
            error = gf.ErrorInfo.maybe_from_pyarrow_error(e)
            code = gf.ErrorCode.INTERNAL_ERROR if error is None else error.code
            if code != gf.ErrorCode.POLL:  # a poll is no outcome: the query still runs
                self._count(_outcome(code))
                log.info(
                    "query_ended", code=gf.ErrorCode.name(code), error=None if error is None else error.msg
                )
            raise
        finally:
            # submitted (or refused) by now: a query the executor does not know is not listed any more
            for task in created:
                self._submitted(task.task_id)
        self._count("ok")
        log.info("query_finished", ticket=info.endpoints[0].ticket.ticket.decode())
        return info

    def _query_task(self, descriptor: pyarrow.flight.FlightDescriptor) -> QueryTask:
        with _client_errors():
            sql = self._sql_for(descriptor)
        cmd = (
            descriptor.command
            if descriptor.descriptor_type == pyarrow.flight.DescriptorType.CMD
            else sql.encode()
        )
        config = self._config
        task = QueryTask(
            self._database,
            sql,
            cmd,
            config.batch_size,
            config.query_timeout_sec,
            in_memory_bytes=config.in_memory_result_kb * 1024,
        )
        with self._queries_lock:
            self._forget_ended_locked()
            self._queries[task.task_id] = task
            self._submitting.add(task.task_id)
        log.info("query_submitted", task_id=task.task_id, sql=_short(sql))
        return task

    def do_get(
        self, context: pyarrow.flight.ServerCallContext, ticket: pyarrow.flight.Ticket
    ) -> pyarrow.flight.FlightDataStream:
        task_id = ticket.ticket.decode("utf-8", errors="replace")
        return self.do_get_task_result(context, self._ctx.task_executor, task_id)

    def _sql_for(self, descriptor: pyarrow.flight.FlightDescriptor) -> str:
        """The query a descriptor asks for: its command, or reading the table its path names."""
        if descriptor.descriptor_type == pyarrow.flight.DescriptorType.PATH:
            table = self._database.resolve_table(self._table_for(descriptor))
            return f"SELECT * FROM {quote_identifier(table)}"
        try:
            sql = bytes(descriptor.command).decode("utf-8")
        except UnicodeDecodeError:
            raise ClientError("The command must be a SQL query in UTF-8.") from None
        self._database.check_query(sql)
        return sql

    @staticmethod
    def _table_for(descriptor: pyarrow.flight.FlightDescriptor) -> str:
        path = descriptor.path if descriptor.descriptor_type == pyarrow.flight.DescriptorType.PATH else None
        if not path or len(path) != 1:
            raise ClientError(
                "Name one table in the descriptor's path, e.g. FlightDescriptor.for_path('sales')."
            )
        try:
            return bytes(path[0]).decode("utf-8")
        except UnicodeDecodeError:
            raise ClientError("The table name must be UTF-8.") from None

    def _count(self, outcome: str) -> None:
        self._metrics.queries.labels(outcome=outcome).inc()

    # -- loading ----------------------------------------------------------------------------------

    def do_put(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.FlightMetadataWriter,
    ) -> None:
        with _client_errors():
            table = self._table_for(descriptor)
            # Read the whole upload before touching the database: a slow uploader then holds no
            # lock, and a client that went away mid-stream (pyarrow ends the reader as if the
            # stream were complete) is noticed before anything is stored.
            data = reader.read_all()
            if context.is_cancelled():
                log.info("upload_interrupted", table=table, rows_received=data.num_rows)
                raise gf.ErrorInfo.for_reason(
                    gf.ErrorCode.COMMAND_CANCELLED,
                    f"The upload to '{table}' was interrupted; nothing was stored.",
                ).to_cancelled_error()
            result = self._database.load(table, data)
        self._metrics.rows_loaded.inc(result.rows_loaded)
        log.info("table_loaded", **dataclasses.asdict(result))
        writer.write(pyarrow.py_buffer(orjson.dumps(dataclasses.asdict(result))))

    # -- actions ----------------------------------------------------------------------------------

    def list_actions(self, context: pyarrow.flight.ServerCallContext) -> Iterable[pyarrow.flight.ActionType]:
        return [pyarrow.flight.ActionType(name, description) for name, description in ACTIONS]

    def do_action(
        self, context: pyarrow.flight.ServerCallContext, action: pyarrow.flight.Action
    ) -> Iterable[pyarrow.flight.Result]:
        with _client_errors():
            if action.type == "cancel":
                return [_json_result(self._cancel(action.body.to_pybytes()))]
            if action.type == "list-tables":
                return [_json_result(self._list_tables())]
            if action.type == "list-queries":
                return [_json_result(self._list_queries())]
            names = ", ".join(name for name, _ in ACTIONS)
            raise ClientError(f"Unknown action '{action.type}'. Actions: {names}.")

    def _cancel(self, body: bytes) -> dict[str, Any]:
        task_id = body.decode("utf-8", errors="replace").strip()
        if not _TASK_ID.fullmatch(task_id):
            raise ClientError("The body of 'cancel' must be a task id: the 32 hex digits of a ticket.")
        executor = self._ctx.task_executor
        known = executor.get_task_submitted_timestamp(task_id) is not None
        try:
            outcome = executor.wait_for_result(task_id, timeout=0) if known else None
        except gf.TaskWaitTimeoutError:
            outcome = None  # queued or running
        # a finished query's result may be streaming to a client right now: it is left to expire
        finished = outcome is not None and not outcome.cancelled
        if outcome is not None and outcome.cancelled:
            cancelled = True  # cancelled already (it stays known as such until it expires)
        else:
            cancelled = known and not finished and executor.cancel(task_id)
        log.info(
            "query_cancel_requested", task_id=task_id, known=known, finished=finished, cancelled=cancelled
        )
        return {"task_id": task_id, "known": known, "finished": finished, "cancelled": cancelled}

    def _list_tables(self) -> list[dict[str, Any]]:
        return [
            {
                "name": table.name,
                "num_rows": table.num_rows,
                "columns": [{"name": field.name, "type": str(field.type)} for field in table.schema],
            }
            for table in self._database.tables()
        ]

    def _forget_ended_locked(self) -> None:
        """Drop the queries that ended, that were cancelled before they ran, or that the executor
        refused or forgot: what is left is what runs or waits to run.

        A query is registered before the framework submits it: until the call that created it
        is past the submission, "unknown to the executor" means "about to be submitted", not gone.
        """
        executor = self._ctx.task_executor
        ended = [
            task_id
            for task_id, task in self._queries.items()
            if task.state is QueryState.FINISHED
            or (task.cancelled and task.state is QueryState.QUEUED)  # it never runs
            or (task_id not in self._submitting and executor.get_task_submitted_timestamp(task_id) is None)
        ]
        for task_id in ended:
            del self._queries[task_id]

    def _submitted(self, task_id: str) -> None:
        with self._queries_lock:
            self._submitting.discard(task_id)
            self._forget_ended_locked()

    def _list_queries(self) -> list[dict[str, Any]]:
        with self._queries_lock:
            self._forget_ended_locked()
            tasks = list(self._queries.values())
        now = time.time()
        return [
            {
                "task_id": task.task_id,
                "state": task.state.value,
                "sql": _short(task.sql),
                "seconds": round(now - task.submitted_at, 3),
            }
            for task in sorted(tasks, key=lambda t: t.submitted_at)
        ]


def _outcome(code: int) -> str:
    if code == gf.ErrorCode.BAD_ARGUMENT:
        return "bad_argument"
    if code == gf.ErrorCode.TIMEOUT:
        return "timeout"
    if code == gf.ErrorCode.COMMAND_CANCELLED:
        return "cancelled"
    return "failed"
