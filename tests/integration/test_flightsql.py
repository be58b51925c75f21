"""The Flight SQL layer through a real server: the exact protocol bytes from pyarrow's FlightClient for
what ADBC cannot send (cancellation, malformed input), and ADBC against a service that serves only
queries and metadata."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import adbc_driver_flightsql.dbapi
import adbc_driver_manager
import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server import flightsql
from gooddata_flight_server.testing import running_server
from tests.flightsql_wire import any_message, field_bytes, field_varint, read_fields, unpack_any
from tests.waiting import wait_until

TABLE = pyarrow.table({"n": [1, 2, 3], "s": ["a", "b", "c"]})


class TableTask(gf.Task):
    def run(self) -> gf.TaskResult:
        return gf.FlightDataTaskResult.for_table(TABLE)


class BlockingTask(gf.Task):
    """Runs until released, checking for cancellation meanwhile."""

    def __init__(self, cmd: bytes, release: threading.Event, cancellable: bool = True) -> None:
        super().__init__(cmd, cancellable=cancellable)
        self.release = release
        self.started = threading.Event()
        self.honours_cancel = cancellable

    def run(self) -> gf.TaskResult:
        self.started.set()
        while not self.release.wait(0.01):
            if self.honours_cancel:
                self.check_cancelled()
        return gf.FlightDataTaskResult.for_table(TABLE)


class QueriesOnly(flightsql.FlightSqlMethods):
    """Serves queries ("block", "stubborn" or anything else) and table metadata; nothing else."""

    def __init__(self, ctx: gf.ServerContext) -> None:
        super().__init__(ctx)
        self.release = threading.Event()
        self.tasks: dict[str, gf.Task] = {}

    def statement_query(
        self, context: flight.ServerCallContext, command: flightsql.StatementQuery
    ) -> gf.Task:
        cmd = command.query.encode()
        if command.query == "fail":
            raise gf.ErrorInfo.bad_argument("This query always fails.")
        task: gf.Task
        if command.query in ("block", "stubborn"):
            task = BlockingTask(cmd, self.release, cancellable=command.query == "block")
        else:
            task = TableTask(cmd)
        self.tasks[command.query] = task
        return task

    def get_catalogs(self, context: flight.ServerCallContext) -> pyarrow.Table:
        return pyarrow.table({"catalog_name": ["memory"]})

    def get_db_schemas(
        self, context: flight.ServerCallContext, command: flightsql.GetDbSchemas
    ) -> pyarrow.Table:
        return pyarrow.table({"catalog_name": ["memory"], "db_schema_name": ["main"]})

    def get_tables(self, context: flight.ServerCallContext, command: flightsql.GetTables) -> pyarrow.Table:
        columns: dict[str, Any] = {
            "catalog_name": ["memory"],
            "db_schema_name": ["main"],
            "table_name": ["numbers"],
            "table_type": ["TABLE"],
        }
        if command.include_schema:
            columns["table_schema"] = [flightsql.serialize_schema(TABLE.schema)]
        return pyarrow.table(columns)


@pytest.fixture
def service() -> Iterator[tuple[gf.GoodDataFlightServer, QueriesOnly, flight.FlightClient]]:
    holder: list[QueriesOnly] = []

    def factory(ctx: gf.ServerContext) -> gf.FlightServerMethods:
        holder.append(QueriesOnly(ctx))
        return holder[0]

    with running_server(factory) as server, flight.FlightClient(server.location) as client:
        try:
            yield server, holder[0], client
        finally:
            holder[0].release.set()


def query_descriptor(sql: str) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(any_message("CommandStatementQuery", field_bytes(1, sql)))


def ticket_for(task_id: str) -> flight.Ticket:
    return flight.Ticket(any_message("TicketStatementQuery", field_bytes(1, task_id.encode())))


def cancel_flight_info(client: flight.FlightClient, info: flight.FlightInfo) -> int:
    """CancelFlightInfo with a bare CancelFlightInfoRequest (info = 1); the CancelStatus answered."""
    (result,) = client.do_action(flight.Action("CancelFlightInfo", field_bytes(1, info.serialize())))
    status = read_fields(result.body.to_pybytes()).get(1, [0])[0]
    assert isinstance(status, int)
    return status


def info_for(task_id: str) -> flight.FlightInfo:
    return flight.FlightInfo(
        TABLE.schema, query_descriptor("block"), [flight.FlightEndpoint(ticket_for(task_id), [])], -1, -1
    )


def error_info(e: pytest.ExceptionInfo[flight.FlightError]) -> gf.ErrorInfo:
    return gf.ErrorInfo.from_pyarrow_error(e.value)


def bad_argument(call: Callable[[], Any], *fragments: str) -> None:
    with pytest.raises(flight.FlightServerError) as e:
        call()
    info = error_info(e)
    assert info.code == gf.ErrorCode.BAD_ARGUMENT, info
    for fragment in fragments:
        assert fragment in info.msg, info.msg


def test_statement_query_round_trip_with_the_protocols_bytes(service: Any) -> None:
    """GetFlightInfo runs the query as a task; the endpoint's TicketStatementQuery names it; DoGet reads."""
    server, methods, client = service
    info = client.get_flight_info(query_descriptor("numbers"))
    assert info.schema == TABLE.schema
    (endpoint,) = info.endpoints
    assert unpack_any(endpoint.ticket.ticket, "TicketStatementQuery") == {
        1: [methods.tasks["numbers"].task_id.encode()]
    }
    assert [location.uri for location in endpoint.locations] == [server.location.uri]
    assert client.do_get(endpoint.ticket).read_all() == TABLE


def test_cancel_flight_info_drops_an_unread_result(service: Any) -> None:
    """Cancelling a finished query answers CANCELLED; its ticket is then invalid, a second cancel refused."""
    _, _, client = service
    info = client.get_flight_info(query_descriptor("numbers"))
    assert cancel_flight_info(client, info) == 1
    with pytest.raises(flight.FlightServerError) as e:
        client.do_get(info.endpoints[0].ticket).read_all()
    assert error_info(e).code == gf.ErrorCode.INVALID_TICKET
    with pytest.raises(flight.FlightServerError) as e:
        cancel_flight_info(client, info)
    assert error_info(e).code == gf.ErrorCode.INVALID_TICKET


def _start_blocking(
    client: flight.FlightClient, methods: QueriesOnly, sql: str
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client.get_flight_info(query_descriptor(sql))
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: sql in methods.tasks and methods.tasks[sql].started.is_set(), what="the query runs")
    return thread, errors


def test_cancel_flight_info_stops_a_running_query(service: Any) -> None:
    """Cancelling a running query stops its task; the call waiting for it gets COMMAND_CANCELLED."""
    server, methods, client = service
    thread, errors = _start_blocking(client, methods, "block")
    task_id = methods.tasks["block"].task_id
    assert cancel_flight_info(client, info_for(task_id)) in (1, 2)  # CANCELLED or CANCELLING
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], flight.FlightServerError)
    assert gf.ErrorInfo.from_pyarrow_error(errors[0]).code == gf.ErrorCode.COMMAND_CANCELLED
    execution = server.task_executor.wait_for_result(task_id, timeout=10)
    assert execution is not None and execution.cancelled  # over, and known as cancelled until it expires


def test_cancel_of_a_query_that_cannot_be_cancelled(service: Any) -> None:
    """A task that refuses cancellation answers NOT_CANCELLABLE and goes on to finish."""
    _, methods, client = service
    thread, errors = _start_blocking(client, methods, "stubborn")
    assert cancel_flight_info(client, info_for(methods.tasks["stubborn"].task_id)) == 3
    methods.release.set()
    thread.join(10)
    assert errors == []


def test_deprecated_cancel_query_action(service: Any) -> None:
    """CancelQuery takes an Any(ActionCancelQueryRequest) and answers an Any(ActionCancelQueryResult)."""
    _, _, client = service
    info = client.get_flight_info(query_descriptor("numbers"))
    body = any_message("ActionCancelQueryRequest", field_bytes(1, info.serialize()))
    (result,) = client.do_action(flight.Action("CancelQuery", body))
    assert unpack_any(result.body.to_pybytes(), "ActionCancelQueryResult") == {1: [1]}


def test_a_caller_that_goes_away_cancels_its_query(service: Any) -> None:
    """A GetFlightInfo whose deadline passes leaves no work behind: the server cancels the task."""
    server, methods, client = service
    client.list_actions()  # a warm channel: the call reaches the server well before its deadline
    with pytest.raises(flight.FlightTimedOutError):
        client.get_flight_info(query_descriptor("block"), flight.FlightCallOptions(timeout=0.5))
    execution = server.task_executor.wait_for_result(methods.tasks["block"].task_id, timeout=10)
    assert execution is not None and execution.cancelled  # over, and known as cancelled until it expires


def test_metadata_commands_with_the_protocols_bytes(service: Any) -> None:
    """Metadata: FlightInfo and GetSchema carry the protocol's schema; DoGet of the ticket answers."""
    _, _, client = service
    tables = flight.FlightDescriptor.for_command(any_message("CommandGetTables", field_varint(5, 1)))
    info = client.get_flight_info(tables)
    assert info.schema == flightsql.TABLES_WITH_SCHEMA_SCHEMA
    assert client.get_schema(tables).schema == flightsql.TABLES_WITH_SCHEMA_SCHEMA
    (row,) = client.do_get(info.endpoints[0].ticket).read_all().to_pylist()
    assert row["table_name"] == "numbers"
    assert pyarrow.ipc.read_schema(pyarrow.py_buffer(row["table_schema"])) == TABLE.schema

    sql_info = flight.FlightDescriptor.for_command(
        any_message("CommandGetSqlInfo", field_varint(1, 3) + field_varint(1, 8))
    )
    info = client.get_flight_info(sql_info)
    table = client.do_get(info.endpoints[0].ticket).read_all()
    assert table.schema == flightsql.SQL_INFO_SCHEMA
    # read-only (it overrides no update), no transactions (an int32 member)
    assert table.to_pylist() == [{"info_name": 3, "value": True}, {"info_name": 8, "value": 0}]
    assert table.column("value").chunk(0).type_codes.to_pylist() == [1, 3]


def test_adbc_against_a_service_without_prepared_statements(service: Any) -> None:
    """ADBC's DB-API runs queries even though CreatePreparedStatement is UNIMPLEMENTED (it falls back)."""
    server, _, _ = service
    with (
        adbc_driver_flightsql.dbapi.connect(server.location.uri.decode(), autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("numbers")
        assert cur.fetch_arrow_table() == TABLE
        assert conn.adbc_get_info()["vendor_name"] == "gooddata-flight-server"
        assert conn.adbc_get_table_schema("numbers") == TABLE.schema
        with pytest.raises(adbc_driver_manager.Error, match="This query always fails"):
            cur.execute("fail")
        cur.execute("again")
        assert cur.fetch_arrow_table().num_rows == 3


def _unimplemented(call: Callable[[], Any], name: str) -> None:
    with pytest.raises(NotImplementedError, match=name):
        call()


def test_commands_not_served_answer_unimplemented(service: Any) -> None:
    """Valid Flight SQL the service does not serve is UNIMPLEMENTED naming it; the server goes on serving."""
    _, _, client = service

    def info(name: str, value: bytes = b"") -> Callable[[], Any]:
        return lambda: client.get_flight_info(flight.FlightDescriptor.for_command(any_message(name, value)))

    _unimplemented(info("CommandGetXdbcTypeInfo"), "CommandGetXdbcTypeInfo")
    _unimplemented(info("CommandGetCrossReference"), "CommandGetCrossReference")
    _unimplemented(info("CommandGetTableTypes"), "CommandGetTableTypes")  # the service does not override it
    _unimplemented(
        lambda: client.do_get(
            info("CommandGetPrimaryKeys", field_bytes(3, "t"))().endpoints[0].ticket
        ).read_all(),
        "CommandGetPrimaryKeys",
    )
    _unimplemented(
        lambda: list(
            client.do_action(flight.Action("BeginTransaction", any_message("ActionBeginTransactionRequest")))
        ),
        "BeginTransaction",
    )
    _unimplemented(
        lambda: list(
            client.do_action(
                flight.Action(
                    "CreatePreparedStatement",
                    any_message("ActionCreatePreparedStatementRequest", field_bytes(1, "SELECT 1")),
                )
            )
        ),
        "CreatePreparedStatement",
    )
    update = flight.FlightDescriptor.for_command(
        any_message("CommandStatementUpdate", field_bytes(1, "DELETE FROM t"))
    )
    writer, _ = client.do_put(update, pyarrow.schema([]))
    with pytest.raises(NotImplementedError, match="CommandStatementUpdate"):
        writer.close()
    assert (
        client.do_get(client.get_flight_info(query_descriptor("x")).endpoints[0].ticket).read_all() == TABLE
    )


def test_malformed_requests_are_bad_argument_and_the_server_stays_up(service: Any) -> None:
    """Malformed commands, tickets and bodies are BAD_ARGUMENT naming the problem; the server stays up."""
    _, _, client = service

    def info(command: bytes) -> Callable[[], Any]:
        return lambda: client.get_flight_info(flight.FlightDescriptor.for_command(command))

    bad_argument(
        info(b"SELECT 1"),
        "GetFlightInfo: the descriptor's command is not a Flight SQL message",
        "not a serialized protobuf Any",
    )
    bad_argument(
        info(any_message("", type_url="type.googleapis.com/my.Command")),
        "unknown type URL 'type.googleapis.com/my.Command'",
    )
    bad_argument(
        info(any_message("CommandStatementQuery", b"\x0a\x09short")),
        "Cannot decode the Flight SQL message CommandStatementQuery",
    )
    bad_argument(
        info(any_message("CommandStatementUpdate", field_bytes(1, "DELETE FROM t"))),
        "CommandStatementUpdate cannot be sent with GetFlightInfo",
    )
    bad_argument(
        lambda: client.get_flight_info(flight.FlightDescriptor.for_path("numbers")),
        "takes a command descriptor, not a path",
    )
    bad_argument(
        lambda: client.do_get(flight.Ticket(b"\xff\x00garbage")).read_all(),
        "DoGet: the ticket is not a Flight SQL message",
    )
    bad_argument(
        lambda: client.do_get(
            flight.Ticket(any_message("CommandStatementQuery", field_bytes(1, "x")))
        ).read_all(),
        "CommandStatementQuery is not a ticket",
    )
    with pytest.raises(flight.FlightServerError) as e:
        client.do_get(ticket_for("0" * 32)).read_all()
    assert error_info(e).code == gf.ErrorCode.INVALID_TICKET
    bad_argument(
        lambda: list(
            client.do_action(
                flight.Action(
                    "ClosePreparedStatement", any_message("CommandStatementQuery", field_bytes(1, "x"))
                )
            )
        ),
        "The body of ClosePreparedStatement must be a ClosePreparedStatement",
    )
    bad_argument(
        lambda: list(client.do_action(flight.Action("CancelFlightInfo", b"\xff"))),
        "The body of CancelFlightInfo is not a valid request: CancelFlightInfoRequest: truncated varint",
    )
    other_ticket = flight.FlightInfo(
        TABLE.schema, query_descriptor("x"), [flight.FlightEndpoint(b"plain", [])], -1, -1
    )
    with pytest.raises(flight.FlightServerError) as caught:  # the protocol's "not found"
        cancel_flight_info(client, other_ticket)
    assert error_info(caught).code == gf.ErrorCode.INVALID_TICKET
    assert "no ticket of the request names a task known here" in error_info(caught).msg
    _unimplemented(lambda: list(client.do_action(flight.Action("drop-everything", b""))), "drop-everything")
    assert (
        client.do_get(client.get_flight_info(query_descriptor("x")).endpoints[0].ticket).read_all() == TABLE
    )
