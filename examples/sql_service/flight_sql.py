"""The SQL service over Flight SQL: what ADBC, JDBC and BI tools talk to.

``SqlServiceFlightSql`` overrides the commands of ``gooddata_flight_server.flightsql.FlightSqlMethods``
that the DuckDB database can answer; every request that is not Flight SQL goes to the service's plain
Flight methods (``SqlServiceMethods``), so both kinds of clients share one port and one database.

- Queries run as ``QueryTask`` on the server's task executor, like plain queries (same cancellation,
  timeout, streaming). A statement that changes data sent as a query (DB-API ``cursor.execute``
  does that) runs as an update and answers one row: ``count``, the rows changed.
- Updates (``INSERT``, ``UPDATE``, ``DELETE``, ``CREATE``, ``DROP``, ``ALTER``) run in one
  transaction per call, once per row of bound parameters.
- Bulk ingest creates, appends to or replaces a table, all or nothing.
- Metadata comes from DuckDB's catalog (``catalog.py``); prepared statements take ``?``, ``$1`` or
  ``$name`` parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import pyarrow
import pyarrow.flight
import structlog

import gooddata_flight_server as gf
from gooddata_flight_server import flightsql

from . import catalog
from .config import SqlServiceConfig
from .database import Database, StatementKind
from .errors import ClientError, server_failure
from .query import QueryTask

__all__ = ["SqlServiceFlightSql"]

log = structlog.get_logger("sql_service")

_Context = pyarrow.flight.ServerCallContext
_IF_EXISTS: dict[flightsql.TableExists, Literal["fail", "append", "replace"]] = {
    flightsql.TableExists.FAIL: "fail",
    flightsql.TableExists.APPEND: "append",
    flightsql.TableExists.REPLACE: "replace",
}


@contextlib.contextmanager
def _client_errors() -> Iterator[None]:
    """Send a refused request to the client as BAD_ARGUMENT with its ErrorInfo."""
    try:
        yield
    except ClientError as e:
        raise e.info.to_user_error() from None


class UpdateTask(gf.Task):
    """A statement that changes data, sent as a query: runs it and answers ``count`` (rows changed)."""

    def __init__(self, database: Database, sql: str, parameters: Sequence[Any] | None) -> None:
        super().__init__(sql.encode(), cancellable=False)  # a write is not interrupted half-way
        self._database = database
        self._sql = sql
        self._parameters = parameters

    def run(self) -> gf.TaskResult | gf.TaskError:
        try:
            changed = self._database.execute_update(self._sql, self._parameters)
        except ClientError as e:
            return gf.TaskError(e.info, client_error=True)  # the statement is at fault: detail included
        except Exception as e:  # the server's failure, told by reference only
            return server_failure(self.task_id, e)
        return gf.FlightDataTaskResult.for_table(
            pyarrow.table({"count": pyarrow.array([changed], pyarrow.int64())})
        )


def _parameter_sets(kind: StatementKind, parameters: pyarrow.Table | None) -> list[Any] | None:
    """One DuckDB parameter set per row: a list for ``?``/``$1``, a dict by column name for ``$name``."""
    if parameters is None or not kind.parameters:
        if parameters is not None and parameters.num_columns:
            raise ClientError("The statement takes no parameters, yet parameters were bound.")
        return None
    if parameters.num_columns != len(kind.parameters):
        raise ClientError(
            f"The statement takes {len(kind.parameters)} parameter(s), {parameters.num_columns} were bound."
        )
    rows = parameters.to_pylist()
    if kind.positional:
        return [list(row.values()) for row in rows]
    missing = set(kind.parameters) - set(parameters.column_names)
    if missing:
        raise ClientError(f"No value bound for the parameter(s) {', '.join(sorted(missing))}.")
    return rows


class SqlServiceFlightSql(flightsql.FlightSqlMethods):
    def __init__(
        self,
        ctx: gf.ServerContext,
        config: SqlServiceConfig,
        database: Database,
        fallback: gf.FlightServerMethods,
    ) -> None:
        super().__init__(ctx, fallback=fallback)
        self._config = config
        self._database = database

    def sql_info(self) -> Mapping[int, flightsql.SqlInfoValue]:
        return {
            **super().sql_info(),
            flightsql.SqlInfo.FLIGHT_SQL_SERVER_NAME: "gooddata-flight-server sql_service (DuckDB)",
            flightsql.SqlInfo.SQL_DDL_TABLE: True,
            flightsql.SqlInfo.SQL_IDENTIFIER_QUOTE_CHAR: '"',
            flightsql.SqlInfo.SQL_IDENTIFIER_CASE: flightsql.Int32(1),  # case-insensitive
            flightsql.SqlInfo.SQL_SEARCH_STRING_ESCAPE: "\\",
        }

    # -- queries ----------------------------------------------------------------------------------

    def _task(self, sql: str, kind: StatementKind, parameters: pyarrow.Table | None) -> gf.Task:
        with _client_errors():
            sets = _parameter_sets(kind, parameters)
            if kind.kind == "update":
                return UpdateTask(self._database, sql, sets)
            if sets is not None and len(sets) != 1:
                raise ClientError(f"Bind one row of parameters to run a query, not {len(sets)}.")
        config = self._config
        task = QueryTask(
            self._database,
            sql,
            sql.encode(),
            config.batch_size,
            config.query_timeout_sec,
            parameters=None if sets is None else sets[0],
            in_memory_bytes=config.in_memory_result_kb * 1024,
        )
        log.info(
            "query_submitted", task_id=task.task_id, sql=" ".join(sql.split())[:200], protocol="flightsql"
        )
        return task

    def _classify(self, sql: str) -> StatementKind:
        with _client_errors():
            return self._database.classify(sql)

    def statement_query(self, context: _Context, command: flightsql.StatementQuery) -> gf.Task:
        return self._task(command.query, self._classify(command.query), None)

    def statement_query_schema(self, context: _Context, command: flightsql.StatementQuery) -> pyarrow.Schema:
        with _client_errors():
            self._database.check_query(command.query)
            return self._database.query_schema(command.query)

    def create_prepared_statement(
        self, context: _Context, request: flightsql.CreatePreparedStatement
    ) -> flightsql.PreparedStatement:
        kind = self._classify(request.query)
        dataset_schema = None
        if kind.kind == "query" and not kind.parameters:
            with _client_errors():
                dataset_schema = self._database.query_schema(request.query)
        parameter_schema = None
        if kind.parameters:
            # DuckDB infers parameter types from the values bound: any type will do (null = any)
            parameter_schema = pyarrow.schema(
                [pyarrow.field(name, pyarrow.null()) for name in kind.parameters]
            )
        return flightsql.PreparedStatement(request.query, dataset_schema, parameter_schema, state=kind)

    def prepared_statement_query(
        self, context: _Context, statement: flightsql.PreparedStatement, parameters: pyarrow.Table | None
    ) -> gf.Task:
        return self._task(statement.query, statement.state, parameters)

    # -- updates ----------------------------------------------------------------------------------

    def _update(self, sql: str, kind: StatementKind, parameters: pyarrow.Table | None) -> int:
        with _client_errors():
            if kind.kind == "query":
                raise ClientError("The statement is a query (it returns rows): run it as a query.")
            return self._database.execute_update(sql, _parameter_sets(kind, parameters))

    def statement_update(self, context: _Context, command: flightsql.StatementUpdate) -> int:
        return self._update(command.query, self._classify(command.query), None)

    def prepared_statement_update(
        self, context: _Context, statement: flightsql.PreparedStatement, parameters: pyarrow.Table | None
    ) -> int:
        return self._update(statement.query, statement.state, parameters)

    def statement_ingest(
        self, context: _Context, command: flightsql.StatementIngest, data: pyarrow.Table
    ) -> int:
        with _client_errors():
            if command.temporary:
                raise ClientError(
                    "Temporary tables are not supported: each call has a connection of its own."
                )
            if command.db_schema not in (None, "main"):
                raise ClientError(f"Tables live in the schema 'main', not '{command.db_schema}'.")
            if command.if_not_exist is flightsql.TableNotExist.UNSPECIFIED or (
                command.if_exists is flightsql.TableExists.UNSPECIFIED
            ):
                raise ClientError(
                    "Say what to do when the table exists or does not (table definition options)."
                )
            if_exists = _IF_EXISTS[command.if_exists]
            result = self._database.ingest(
                command.table,
                data,
                create=command.if_not_exist is flightsql.TableNotExist.CREATE,
                if_exists=if_exists,
            )
        return result.rows_loaded

    # -- metadata ---------------------------------------------------------------------------------

    def get_catalogs(self, context: _Context) -> pyarrow.Table:
        with _client_errors():
            return catalog.catalogs(self._database)

    def get_db_schemas(self, context: _Context, command: flightsql.GetDbSchemas) -> pyarrow.Table:
        with _client_errors():
            return catalog.db_schemas(self._database, command)

    def get_tables(self, context: _Context, command: flightsql.GetTables) -> pyarrow.Table:
        with _client_errors():
            return catalog.tables(self._database, command)

    def get_table_types(self, context: _Context) -> pyarrow.Table:
        return pyarrow.table({"table_type": list(catalog.TABLE_TYPES)})

    def get_primary_keys(self, context: _Context, command: flightsql.GetPrimaryKeys) -> pyarrow.Table:
        with _client_errors():
            return catalog.primary_keys(self._database, command)
