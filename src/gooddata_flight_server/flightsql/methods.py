"""``FlightSqlMethods``: the Flight RPCs of a Flight SQL server, dispatched to methods a service overrides.

A service subclasses :class:`FlightSqlMethods` and overrides the methods of what it serves -- at
least :meth:`~FlightSqlMethods.statement_query`, which returns the :class:`gooddata_flight_server.Task`
that runs a query. Everything else (decoding the protocol's messages, running the task on the
server's executor, tickets, prepared statement handles, the fixed schemas of metadata results,
cancellation) is done here. Commands a service does not serve answer UNIMPLEMENTED, naming the
command. Requests that are not Flight SQL at all go to ``fallback`` (a service's plain Flight
methods) when one is given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import pyarrow
import pyarrow.flight

from gooddata_flight_server._version import __version__
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.flight_protocol import endpoint_expiring_at
from gooddata_flight_server.flightsql import codec, schemas
from gooddata_flight_server.flightsql._errors import bad_request, not_supported
from gooddata_flight_server.flightsql._requests import (
    ACTION_REQUESTS,
    ACTIONS,
    METADATA,
    METADATA_HOOKS,
    UNSUPPORTED_ACTIONS,
    Metadata,
    metadata_schema,
    request_name,
)
from gooddata_flight_server.flightsql._upload import read_upload
from gooddata_flight_server.flightsql.commands import (
    CancelStatus,
    ClosePreparedStatement,
    CreatePreparedStatement,
    GetCatalogs,
    GetDbSchemas,
    GetPrimaryKeys,
    GetSqlInfo,
    GetTables,
    GetTableTypes,
    PreparedStatementQuery,
    PreparedStatementUpdate,
    StatementIngest,
    StatementQuery,
    StatementUpdate,
)
from gooddata_flight_server.flightsql.prepared import PreparedStatement, PreparedStatements
from gooddata_flight_server.flightsql.sql_info import (
    Int32,
    SqlInfo,
    SqlInfoValue,
    SqlSupportedTransaction,
    sql_info_table,
)
from gooddata_flight_server.methods import FlightServerMethods
from gooddata_flight_server.rpc import task_flow
from gooddata_flight_server.tasks import Task
from gooddata_flight_server.tasks.cancellation import cancel_tasks

__all__ = ["FlightSqlMethods"]


class FlightSqlMethods(FlightServerMethods):
    """Flight SQL on top of the framework; override the methods of the commands the service serves.

    ``fallback`` receives every call that is not Flight SQL: descriptors with a path or a command
    that is no Flight SQL message, other tickets, other actions, ListFlights and DoExchange. Without
    it such calls are refused with a message saying what was wrong.

    Prepared statements unused for ``prepared_statement_timeout_sec`` are dropped; at most
    ``max_prepared_statements`` are open at a time.
    """

    def __init__(
        self,
        ctx: ServerContext,
        *,
        fallback: FlightServerMethods | None = None,
        prepared_statement_timeout_sec: float = 3600.0,
        max_prepared_statements: int = 10_000,
    ) -> None:
        self._ctx = ctx
        self._fallback = fallback
        self._prepared = PreparedStatements(prepared_statement_timeout_sec, max_prepared_statements)

    # -- what a service overrides ---------------------------------------------------------------

    def sql_info(self) -> Mapping[int, SqlInfoValue]:
        """What GetSqlInfo answers; extend it with ``{**super().sql_info(), ...}``.

        By default: the server's name and versions, SQL but no Substrait, no transactions,
        cancellation, and whether the service is read-only and ingests in bulk -- told by which of
        the update and ingest methods it overrides.
        """
        updates = self._serves("statement_update") or self._serves("prepared_statement_update")
        ingest = self._serves("statement_ingest")
        return {
            SqlInfo.FLIGHT_SQL_SERVER_NAME: "gooddata-flight-server",
            SqlInfo.FLIGHT_SQL_SERVER_VERSION: __version__,
            SqlInfo.FLIGHT_SQL_SERVER_ARROW_VERSION: pyarrow.__version__,
            SqlInfo.FLIGHT_SQL_SERVER_READ_ONLY: not (updates or ingest),
            SqlInfo.FLIGHT_SQL_SERVER_SQL: True,
            SqlInfo.FLIGHT_SQL_SERVER_SUBSTRAIT: False,
            SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION: Int32(SqlSupportedTransaction.NONE),
            SqlInfo.FLIGHT_SQL_SERVER_CANCEL: True,
            SqlInfo.FLIGHT_SQL_SERVER_BULK_INGESTION: ingest,
            SqlInfo.FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED: False,
            SqlInfo.FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT: Int32(int(self._prepared.idle_timeout_sec * 1000)),
        }

    def statement_query(self, context: pyarrow.flight.ServerCallContext, command: StatementQuery) -> Task:
        """The task that runs ``command.query``; its result (``gf.FlightDataTaskResult``) is streamed
        to the client. Raise a Flight error (``gf.ErrorInfo...``) to refuse the query."""
        raise not_supported("CommandStatementQuery (running SQL queries)")

    def statement_query_schema(
        self, context: pyarrow.flight.ServerCallContext, command: StatementQuery
    ) -> pyarrow.Schema:
        """The schema of the query's result, without running it (GetSchema)."""
        raise not_supported("GetSchema of CommandStatementQuery")

    def create_prepared_statement(
        self, context: pyarrow.flight.ServerCallContext, request: CreatePreparedStatement
    ) -> PreparedStatement:
        """Prepare ``request.query``; the layer keeps what this returns until the client closes it."""
        raise not_supported("The action CreatePreparedStatement")

    def prepared_statement_query(
        self,
        context: pyarrow.flight.ServerCallContext,
        statement: PreparedStatement,
        parameters: pyarrow.Table | None,
    ) -> Task:
        """The task that runs a prepared statement with the parameters bound last (one row per run;
        None when none were bound)."""
        raise not_supported("CommandPreparedStatementQuery")

    def prepared_statement_update(
        self,
        context: pyarrow.flight.ServerCallContext,
        statement: PreparedStatement,
        parameters: pyarrow.Table | None,
    ) -> int:
        """Run a prepared statement that changes data, once per row of ``parameters`` (once when
        None); the number of rows changed, or -1 when unknown."""
        raise not_supported("CommandPreparedStatementUpdate")

    def close_prepared_statement(
        self, context: pyarrow.flight.ServerCallContext, statement: PreparedStatement
    ) -> None:
        """Release what the service holds for a statement the client closed; nothing by default."""

    def statement_update(self, context: pyarrow.flight.ServerCallContext, command: StatementUpdate) -> int:
        """Run a SQL statement that changes data; the number of rows changed, or -1 when unknown."""
        raise not_supported("CommandStatementUpdate")

    def statement_ingest(
        self, context: pyarrow.flight.ServerCallContext, command: StatementIngest, data: pyarrow.Table
    ) -> int:
        """Load ``data`` (read in full) into ``command.table``; the number of rows loaded."""
        raise not_supported("CommandStatementIngest (bulk ingestion)")

    def get_catalogs(self, context: pyarrow.flight.ServerCallContext) -> pyarrow.Table:
        """The catalogs, with the columns of ``schemas.CATALOGS_SCHEMA``."""
        raise not_supported("CommandGetCatalogs")

    def get_db_schemas(
        self, context: pyarrow.flight.ServerCallContext, command: GetDbSchemas
    ) -> pyarrow.Table:
        """The database schemas matching the command, with the columns of ``DB_SCHEMAS_SCHEMA``."""
        raise not_supported("CommandGetDbSchemas")

    def get_tables(self, context: pyarrow.flight.ServerCallContext, command: GetTables) -> pyarrow.Table:
        """The tables matching the command, with the columns of ``TABLES_SCHEMA`` (plus
        ``table_schema`` when ``command.include_schema``: see ``schemas.serialize_schema``)."""
        raise not_supported("CommandGetTables")

    def get_table_types(self, context: pyarrow.flight.ServerCallContext) -> pyarrow.Table:
        """The table types, with the columns of ``TABLE_TYPES_SCHEMA``."""
        raise not_supported("CommandGetTableTypes")

    def get_primary_keys(
        self, context: pyarrow.flight.ServerCallContext, command: GetPrimaryKeys
    ) -> pyarrow.Table:
        """The primary key columns of a table, with the columns of ``PRIMARY_KEYS_SCHEMA``."""
        raise not_supported("CommandGetPrimaryKeys")

    def endpoint_locations(self) -> list[pyarrow.flight.Location]:
        """Where a query's result can be fetched: this server's advertised location, so that with
        several replicas the client comes back to the one that holds the result."""
        return [self._ctx.location]

    # -- cancellation -----------------------------------------------------------------------------

    def task_id_for_ticket(self, ticket: bytes) -> str | None:
        """The id of the task whose result a ticket fetches, if it is a ``TicketStatementQuery`` of
        this layer; the plain Flight methods' answer for a ticket that is no Flight SQL at all; None
        for any other ticket (a metadata ticket)."""
        try:
            request = codec.decode(ticket)
        except codec.NotFlightSql:
            return None if self._fallback is None else self._fallback.task_id_for_ticket(ticket)
        except (pyarrow.flight.FlightError, NotImplementedError):
            return None
        if not isinstance(request, codec.StatementTicket):
            return None
        try:
            return request.handle.decode("ascii")
        except UnicodeDecodeError:
            return None

    def cancel_flight_info(
        self, context: pyarrow.flight.ServerCallContext, info: pyarrow.flight.FlightInfo
    ) -> CancelStatus:
        """Cancel the queries whose results the FlightInfo's endpoints fetch (CancelFlightInfo)."""
        task_ids = [self.task_id_for_ticket(endpoint.ticket.ticket) for endpoint in info.endpoints]
        known = [task_id for task_id in task_ids if task_id is not None]
        if not known:
            raise bad_request("The FlightInfo holds no ticket of a Flight SQL query of this server.")
        return cancel_tasks(self._ctx.task_executor, known)

    # -- the RPCs ---------------------------------------------------------------------------------

    def get_flight_info(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.FlightInfo:
        command = self._command(descriptor, "GetFlightInfo")
        if command is None:
            return self._other("GetFlightInfo").get_flight_info(context, descriptor)
        if isinstance(command, StatementQuery):
            return self._query_info(context, descriptor, self.statement_query(context, command))
        if isinstance(command, PreparedStatementQuery):
            statement, parameters = self._prepared.get(command.handle)
            task = self.prepared_statement_query(context, statement, parameters)
            return self._query_info(context, descriptor, task)
        if isinstance(command, METADATA):
            hook = METADATA_HOOKS.get(type(command))
            if hook is not None and not self._serves(hook):
                raise not_supported(request_name(command))
            # the ticket is the command itself: any replica can answer it, as often as asked
            endpoint = pyarrow.flight.FlightEndpoint(bytes(descriptor.command), [])
            return pyarrow.flight.FlightInfo(metadata_schema(command), descriptor, [endpoint], -1, -1)
        self._wrong_rpc(command, "GetFlightInfo")

    def get_schema(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.SchemaResult:
        command = self._command(descriptor, "GetSchema")
        if command is None:
            return self._other("GetSchema").get_schema(context, descriptor)
        if isinstance(command, StatementQuery):
            return pyarrow.flight.SchemaResult(self.statement_query_schema(context, command))
        if isinstance(command, PreparedStatementQuery):
            statement, _ = self._prepared.get(command.handle)
            if statement.dataset_schema is None:
                raise not_supported("GetSchema of this prepared statement (its schema is not known)")
            return pyarrow.flight.SchemaResult(statement.dataset_schema)
        if isinstance(command, METADATA):
            return pyarrow.flight.SchemaResult(metadata_schema(command))
        self._wrong_rpc(command, "GetSchema")

    def do_get(
        self, context: pyarrow.flight.ServerCallContext, ticket: pyarrow.flight.Ticket
    ) -> pyarrow.flight.FlightDataStream:
        request = self._request(ticket.ticket, "DoGet", "the ticket")
        if request is None:
            return self._other("DoGet").do_get(context, ticket)
        if isinstance(request, codec.StatementTicket):
            task_id = self.task_id_for_ticket(ticket.ticket)
            if task_id is None:
                raise bad_request("The TicketStatementQuery does not name a query of this server.")
            return self.do_get_task_result(context, self._ctx.task_executor, task_id)
        if isinstance(request, METADATA):
            # a Table returned as it is: the server streams it and counts what it sends
            return self._metadata(context, request)
        raise bad_request(f"{request_name(request)} is not a ticket; DoGet takes the ticket of a FlightInfo.")

    def do_put(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.FlightMetadataWriter,
    ) -> None:
        command = self._command(descriptor, "DoPut")
        if command is None:
            self._other("DoPut").do_put(context, descriptor, reader, writer)
            return
        if isinstance(command, PreparedStatementQuery):
            self._prepared.get(command.handle)  # an unknown handle fails before the upload is read
            self._prepared.bind(command.handle, read_upload(context, reader, "the parameters"))
            return
        if isinstance(command, StatementUpdate):
            # the command holds the whole statement; clients send no data with it
            count = self.statement_update(context, command)
        elif isinstance(command, PreparedStatementUpdate):
            statement, _ = self._prepared.get(command.handle)
            parameters = read_upload(context, reader, "the parameters")
            count = self.prepared_statement_update(context, statement, parameters)
        elif isinstance(command, StatementIngest):
            data = read_upload(context, reader, f"the data for table '{command.table}'")
            if data is None:
                data = pyarrow.table({})
            count = self.statement_ingest(context, command, data)
        else:
            self._wrong_rpc(command, "DoPut")
        writer.write(pyarrow.py_buffer(codec.encode_update_result(count)))

    def do_action(
        self, context: pyarrow.flight.ServerCallContext, action: pyarrow.flight.Action
    ) -> Iterable[pyarrow.flight.Result]:
        kind = action.type
        body = action.body.to_pybytes() if action.body is not None else b""
        expected = ACTION_REQUESTS.get(kind)
        if expected is None:
            if kind in UNSUPPORTED_ACTIONS:
                raise not_supported(f"The action {kind}")
            return self._other(f"the action '{kind}'").do_action(context, action)
        request = self._request(body, kind, "the action body", fallback=False)
        if not isinstance(request, expected):
            raise bad_request(
                f"The body of {kind} must be a {expected.__name__}, not {request_name(request)}."
            )
        if isinstance(request, CreatePreparedStatement):
            return [pyarrow.flight.Result(self._create_prepared(context, request))]
        if isinstance(request, ClosePreparedStatement):
            statement = self._prepared.remove(request.handle)
            if statement is not None:
                self.close_prepared_statement(context, statement)
            return []
        assert isinstance(request, codec.CancelQuery)
        status = self.cancel_flight_info(context, request.info)
        return [pyarrow.flight.Result(codec.encode_cancel_query_result(status))]

    def list_actions(self, context: pyarrow.flight.ServerCallContext) -> Iterable[pyarrow.flight.ActionType]:
        actions = [pyarrow.flight.ActionType(name, description) for name, description in ACTIONS]
        if self._fallback is not None:
            with contextlib.suppress(NotImplementedError):  # a fallback without actions
                actions.extend(self._fallback.list_actions(context))
        return actions

    def list_flights(
        self, context: pyarrow.flight.ServerCallContext, criteria: bytes
    ) -> Iterable[pyarrow.flight.FlightInfo]:
        return self._other("ListFlights").list_flights(context, criteria)

    def do_exchange(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.MetadataRecordBatchWriter,
    ) -> None:
        self._other("DoExchange").do_exchange(context, descriptor, reader, writer)

    # -- internals ---------------------------------------------------------------------------------

    def _serves(self, method: str) -> bool:
        return getattr(type(self), method) is not getattr(FlightSqlMethods, method)

    def _other(self, what: str) -> FlightServerMethods:
        if self._fallback is None:
            raise not_supported(f"{what} (not Flight SQL)")
        return self._fallback

    def _request(self, data: bytes, rpc: str, what: str, fallback: bool = True) -> Any:
        """The Flight SQL request in ``data``; None when it is no Flight SQL and a fallback takes it."""
        try:
            return codec.decode(data)
        except codec.NotFlightSql as e:
            if fallback and self._fallback is not None:
                return None
            raise bad_request(f"{rpc}: {what} is not a Flight SQL message: {e}.") from None

    def _command(self, descriptor: pyarrow.flight.FlightDescriptor, rpc: str) -> Any:
        if descriptor.descriptor_type != pyarrow.flight.DescriptorType.CMD:
            if self._fallback is not None:
                return None
            raise bad_request(f"{rpc}: Flight SQL takes a command descriptor, not a path.")
        return self._request(bytes(descriptor.command), rpc, "the descriptor's command")

    @staticmethod
    def _wrong_rpc(command: object, rpc: str) -> NoReturn:
        raise bad_request(f"{request_name(command)} cannot be sent with {rpc}.")

    def _query_info(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        task: Task,
    ) -> pyarrow.flight.FlightInfo:
        executor = self._ctx.task_executor
        executor.submit(task)
        # the caller goes away (or call_deadline_sec passes): the query's task is cancelled
        result = task_flow.task_result(self.wait_for_task(context, self._ctx, task.task_id))
        ticket = codec.encode_statement_ticket(task.task_id.encode("ascii"))
        endpoint = pyarrow.flight.FlightEndpoint(ticket, self.endpoint_locations())
        expires = executor.result_expiration(task.task_id)
        if expires is not None:
            endpoint = endpoint_expiring_at(endpoint, expires)
        return pyarrow.flight.FlightInfo(result.get_schema(), descriptor, [endpoint], -1, -1)

    def _create_prepared(
        self, context: pyarrow.flight.ServerCallContext, request: CreatePreparedStatement
    ) -> bytes:
        statement = self.create_prepared_statement(context, request)
        handle = self._prepared.add(statement)
        return codec.encode_prepared_statement_result(
            handle,
            b"" if statement.dataset_schema is None else schemas.serialize_schema(statement.dataset_schema),
            b""
            if statement.parameter_schema is None
            else schemas.serialize_schema(statement.parameter_schema),
        )

    def _metadata(self, context: pyarrow.flight.ServerCallContext, command: Metadata) -> pyarrow.Table:
        if isinstance(command, GetSqlInfo):
            return sql_info_table(self.sql_info(), command.info)
        if isinstance(command, GetCatalogs):
            table = self.get_catalogs(context)
        elif isinstance(command, GetDbSchemas):
            table = self.get_db_schemas(context, command)
        elif isinstance(command, GetTables):
            table = self.get_tables(context, command)
        elif isinstance(command, GetTableTypes):
            table = self.get_table_types(context)
        else:
            table = self.get_primary_keys(context, command)
        return schemas.conform(table, metadata_schema(command), request_name(command))
