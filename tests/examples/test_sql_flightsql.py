"""The SQL service over Flight SQL, driven by the ADBC Flight SQL driver (a client nobody here wrote),
plus the exact protocol bytes for what ADBC does not send."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi
import adbc_driver_manager
import pyarrow
import pyarrow.flight as flight
import pytest
import structlog
from examples.sql_service.demo_data import demo_tables
from examples.sql_service.main import sql_service

import gooddata_flight_server as gf
from gooddata_flight_server.testing import running_server
from tests.examples.conftest import Service
from tests.flightsql_wire import any_message, field_bytes, read_fields, unpack_any
from tests.waiting import wait_until

DEMO = demo_tables()
ENDLESS_QUERY = "SELECT sum(x % 7) FROM range(10000000000000) t(x)"
TOKEN = "tok-flightsql-Qw7-secret"


@contextmanager
def connect(uri: str, **db_kwargs: str) -> Iterator[adbc_driver_flightsql.dbapi.Connection]:
    # autocommit: the service has no transactions, so the DB-API default (off) would only warn
    with adbc_driver_flightsql.dbapi.connect(uri, db_kwargs=db_kwargs, autocommit=True) as conn:
        yield conn


@pytest.fixture
def conn(service: Service) -> Iterator[adbc_driver_flightsql.dbapi.Connection]:
    with connect(service.server.location.uri.decode()) as connection:
        yield connection


def test_query_fetches_arrow(service: Service, conn: Any) -> None:
    """A query through ADBC returns the same Arrow table as the plain Flight path of the same server."""
    sql = "SELECT country, count(*) AS n FROM customers GROUP BY country ORDER BY country"
    with conn.cursor() as cur:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    assert table == service.query(sql)
    assert table.num_rows == len(set(DEMO["customers"].column("country").to_pylist()))
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM orders ORDER BY order_id")
        assert cur.fetch_arrow_table() == DEMO["orders"]
        statement = cur.adbc_statement  # not prepared: CommandStatementQuery
        statement.set_sql_query(sql)
        handle, _ = statement.execute_query()
        assert pyarrow.RecordBatchReader._import_from_c(handle.address).read_all() == table


def test_catalog_discovery(conn: Any) -> None:
    """get_objects, get_table_schema and get_table_types describe the demo tables as DuckDB has them."""
    assert conn.adbc_get_objects(depth="catalogs").read_all().to_pylist() == [
        {"catalog_name": "sql_service", "catalog_db_schemas": None}
    ]
    (catalog,) = conn.adbc_get_objects().read_all().to_pylist()
    assert catalog["catalog_name"] == "sql_service"
    (schema,) = catalog["catalog_db_schemas"]
    assert schema["db_schema_name"] == "main"
    tables = {t["table_name"]: t for t in schema["db_schema_tables"]}
    assert sorted(tables) == ["customers", "orders", "products"]
    assert [c["column_name"] for c in tables["orders"]["table_columns"]] == DEMO["orders"].column_names
    assert conn.adbc_get_table_schema("products") == DEMO["products"].schema
    assert conn.adbc_get_table_types() == ["TABLE", "VIEW"]
    only = conn.adbc_get_objects(depth="tables", table_name_filter="ord%").read_all().to_pylist()
    assert [t["table_name"] for t in only[0]["catalog_db_schemas"][0]["db_schema_tables"]] == ["orders"]
    assert conn.adbc_get_info()["vendor_name"] == "gooddata-flight-server sql_service (DuckDB)"


def test_prepared_statement_with_parameters(conn: Any) -> None:
    """A statement with ? parameters is prepared once and run with each set bound through DoPut."""
    customers = DEMO["customers"].to_pylist()
    with conn.cursor() as cur:
        for customer in customers[:3]:
            cur.execute(
                "SELECT name, country FROM customers WHERE customer_id = ?", (customer["customer_id"],)
            )
            assert cur.fetchall() == [(customer["name"], customer["country"])]
        cur.execute("SELECT count(*) FROM orders WHERE quantity >= $1 AND discount <= $2", (3, 0.1))
        expected = sum(1 for o in DEMO["orders"].to_pylist() if o["quantity"] >= 3 and o["discount"] <= 0.1)
        assert cur.fetchone() == (expected,)


def test_updates_answer_row_counts(conn: Any) -> None:
    """DDL and DML through DB-API (prepared) and through a plain statement update report rows changed."""
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE notes (id INTEGER, body VARCHAR)")
        cur.executemany("INSERT INTO notes VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
        assert cur.rowcount == 3
        statement = cur.adbc_statement  # CommandStatementUpdate: no prepare
        statement.set_sql_query("UPDATE notes SET body = upper(body) WHERE id >= 2")
        assert statement.execute_update() == 2
        statement.set_sql_query("DELETE FROM notes WHERE id = 3")  # prepared, no parameters
        statement.prepare()
        assert statement.execute_update() == 1
        cur.execute("DELETE FROM notes WHERE id = 1")  # a write sent as a query answers its count
        assert cur.fetchall() == [(1,)]
        cur.execute("SELECT * FROM notes ORDER BY id")
        assert cur.fetchall() == [(2, "B")]


def test_bulk_ingest(conn: Any) -> None:
    """adbc_ingest creates, appends to and replaces tables, and refuses what its mode forbids."""
    first = pyarrow.table({"region": ["EU", "US"], "target": [1.5, 2.5]})
    with conn.cursor() as cur:
        assert cur.adbc_ingest("targets", first) == 2
        assert cur.adbc_ingest("targets", first.slice(0, 1), mode="append") == 1
        cur.execute("SELECT count(*) FROM targets")
        assert cur.fetchone() == (3,)
        with pytest.raises(adbc_driver_manager.Error, match="exists already"):
            cur.adbc_ingest("targets", first)
        with pytest.raises(adbc_driver_manager.Error, match="does not exist"):
            cur.adbc_ingest("missing", first, mode="append")
        assert cur.adbc_ingest("targets", first.slice(1), mode="replace") == 1
        assert cur.adbc_ingest("targets", first, mode="create_append") == 2
        cur.execute("SELECT region FROM targets ORDER BY target")
        assert cur.fetchall() == [("EU",), ("US",), ("US",)]


def test_cancel_a_running_query_from_another_thread(service: Service, conn: Any) -> None:
    """adbc_cancel cancels the waiting call (the driver cancels its gRPC call); the server stops the query."""
    errors: list[BaseException] = []
    cur = conn.cursor()

    def run() -> None:
        try:
            cur.execute(ENDLESS_QUERY)
        except BaseException as e:
            errors.append(e)

    with structlog.testing.capture_logs() as logs:
        caller = threading.Thread(target=run)
        caller.start()
        # logged by the GetFlightInfo call that runs the query: the call the driver then cancels
        (submitted,) = wait_until(lambda: [e for e in logs if e["event"] == "query_submitted"], what="query")
        cur.adbc_cancel()
        caller.join(10)
        assert not caller.is_alive()
        (abandoned,) = wait_until(
            lambda: [e for e in logs if e["event"] == "task_call_abandoned"], what="abandoned"
        )
    assert len(errors) == 1 and "CANCELLED" in str(errors[0])
    assert abandoned["task_id"] == submitted["task_id"]
    # the task has ended, and is known as cancelled until it expires
    execution = service.server.task_executor.wait_for_result(submitted["task_id"], timeout=10)
    assert execution is not None and execution.cancelled
    cur.execute("SELECT 42")
    assert cur.fetchone() == (42,)
    cur.close()


def test_errors_are_clean_and_the_server_goes_on(conn: Any) -> None:
    """Bad SQL, an unknown table, a refused statement or bad parameters fail cleanly; the next query works."""
    with conn.cursor() as cur:
        for sql, fragment in [
            ("SELEC 1", "Parser Error"),
            ("SELECT * FROM invoices", "invoices"),
            ("ATTACH 'other.db'", "ATTACH statements are not allowed"),
            ("SELECT 1; SELECT 2", "exactly one SQL statement"),
        ]:
            with pytest.raises(adbc_driver_manager.Error, match=fragment):
                cur.execute(sql)
        with pytest.raises(adbc_driver_manager.Error, match=r"takes 1 parameter\(s\), 2 were bound"):
            cur.execute("SELECT * FROM customers WHERE customer_id = ?", (1, 2))
        with pytest.raises(adbc_driver_manager.Error, match="Conversion Error"):
            cur.execute("SELECT * FROM customers WHERE customer_id = ?", ("not a number",))
        cur.execute("SELECT count(*) FROM orders")
        assert cur.fetchone() == (DEMO["orders"].num_rows,)


def test_plain_flight_and_flight_sql_share_the_server(service: Service, conn: Any) -> None:
    """What a Flight SQL client stores, a plain Flight client reads, and the other way round."""
    assert service.put("plain_notes", pyarrow.table({"n": [1, 2]}))["rows_loaded"] == 2
    with conn.cursor() as cur:
        cur.execute("SELECT sum(n) FROM plain_notes")
        assert cur.fetchone() == (3,)
        cur.adbc_ingest("sql_notes", pyarrow.table({"n": [5]}))
    assert service.scalar("SELECT n FROM sql_notes") == 5
    assert "sql_notes" in {t["name"] for t in service.action("list-tables")}


def test_token_authentication(tmp_path: Path) -> None:
    """With token auth on, ADBC with the bearer token works (queries, metadata); without it, it is refused."""
    settings = {
        "server": {"authentication_method": "token"},
        "enumerated_tokens": {"tokens": [TOKEN]},
        "sql_service": {"data_dir": str(tmp_path / "data")},
    }
    header = adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value
    with running_server(sql_service, settings) as server:
        uri = server.location.uri.decode()
        with connect(uri, **{header: f"Bearer {TOKEN}"}) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM customers")
            assert cur.fetchone() == (DEMO["customers"].num_rows,)
            assert conn.adbc_get_table_schema("orders") == DEMO["orders"].schema
        for kwargs in ({}, {header: "Bearer wrong-token"}):
            with (
                pytest.raises(adbc_driver_manager.Error, match="UNAUTHENTICATED"),
                connect(uri, **kwargs) as conn,
            ):
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")


def _flight_sql_info(client: flight.FlightClient, name: str, value: bytes) -> flight.FlightInfo:
    return client.get_flight_info(flight.FlightDescriptor.for_command(any_message(name, value)))


def test_primary_keys_with_the_protocols_bytes(service: Service, conn: Any) -> None:
    """CommandGetPrimaryKeys (which ADBC does not send) answers a table's key columns in key order."""
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE keyed (b VARCHAR, a INTEGER, c INTEGER, PRIMARY KEY (a, b))")
    info = _flight_sql_info(service.client, "CommandGetPrimaryKeys", field_bytes(3, "keyed"))
    rows = service.client.do_get(info.endpoints[0].ticket).read_all().to_pylist()
    assert [(r["table_name"], r["column_name"], r["key_sequence"]) for r in rows] == [
        ("keyed", "a", 1),
        ("keyed", "b", 2),
    ]
    assert {r["catalog_name"] for r in rows} == {"sql_service"}
    info = _flight_sql_info(service.client, "CommandGetPrimaryKeys", field_bytes(3, "orders"))
    assert service.client.do_get(info.endpoints[0].ticket).read_all().num_rows == 0


def test_statement_update_with_the_protocols_bytes(service: Service) -> None:
    """DoPut with CommandStatementUpdate answers a bare DoPutUpdateResult (record_count = 1) as metadata."""
    command = any_message(
        "CommandStatementUpdate", field_bytes(1, "CREATE TABLE raw AS SELECT * FROM range(4)")
    )
    writer, metadata = service.client.do_put(flight.FlightDescriptor.for_command(command), pyarrow.schema([]))
    writer.done_writing()
    answer = metadata.read()
    writer.close()
    assert answer is not None and read_fields(answer.to_pybytes()) == {1: [4]}
    assert service.scalar("SELECT count(*) FROM raw") == 4


def test_what_is_not_flight_sql_goes_to_the_plain_methods(service: Service) -> None:
    """SQL text is a plain query; a Flight SQL Any the service does not serve is UNIMPLEMENTED, not SQL."""
    assert service.scalar("SELECT 7") == 7
    with pytest.raises(NotImplementedError, match="CommandGetXdbcTypeInfo"):
        _flight_sql_info(service.client, "CommandGetXdbcTypeInfo", b"")
    with pytest.raises(flight.FlightServerError) as e:
        _flight_sql_info(service.client, "CommandStatementQuery", b"\xff")
    assert gf.ErrorInfo.from_pyarrow_error(e.value).code == gf.ErrorCode.BAD_ARGUMENT


def _action(client: flight.FlightClient, kind: str, body: bytes) -> list[bytes]:
    return [result.body.to_pybytes() for result in client.do_action(flight.Action(kind, body))]


def test_schemas_and_prepared_statement_lifecycle_with_the_protocols_bytes(service: Service) -> None:
    """GetSchema of a query and of a prepared statement; ClosePreparedStatement makes its handle unknown."""
    client = service.client
    query = any_message("CommandStatementQuery", field_bytes(1, "SELECT * FROM products"))
    assert client.get_schema(flight.FlightDescriptor.for_command(query)).schema == DEMO["products"].schema

    request = any_message("ActionCreatePreparedStatementRequest", field_bytes(1, "SELECT name FROM products"))
    (created,) = _action(client, "CreatePreparedStatement", request)
    fields = unpack_any(created, "ActionCreatePreparedStatementResult")
    (handle,) = fields[1]
    assert isinstance(handle, bytes)
    (dataset_schema,) = fields[2]
    assert isinstance(dataset_schema, bytes)
    assert pyarrow.ipc.read_schema(pyarrow.py_buffer(dataset_schema)).names == ["name"]
    prepared = flight.FlightDescriptor.for_command(
        any_message("CommandPreparedStatementQuery", field_bytes(1, handle))
    )
    assert client.get_schema(prepared).schema.names == ["name"]
    info = client.get_flight_info(prepared)
    assert client.do_get(info.endpoints[0].ticket).read_all().num_rows == DEMO["products"].num_rows

    assert (
        _action(
            client,
            "ClosePreparedStatement",
            any_message("ActionClosePreparedStatementRequest", field_bytes(1, handle)),
        )
        == []
    )
    with pytest.raises(flight.FlightServerError) as e:
        client.get_flight_info(prepared)
    assert "Unknown prepared statement handle" in gf.ErrorInfo.from_pyarrow_error(e.value).msg


def test_cancel_flight_info_releases_a_streaming_result(start_service: Callable[..., Service]) -> None:
    """Cancelling a query whose rows wait to stream answers CANCELLED; its ticket is then invalid."""
    service = start_service(batch_size=100)
    query = any_message("CommandStatementQuery", field_bytes(1, "SELECT * FROM orders"))
    info = service.client.get_flight_info(flight.FlightDescriptor.for_command(query))
    (answer,) = _action(service.client, "CancelFlightInfo", field_bytes(1, info.serialize()))
    assert read_fields(answer) == {1: [1]}  # CANCEL_STATUS_CANCELLED
    with pytest.raises(flight.FlightServerError) as e:
        service.client.do_get(info.endpoints[0].ticket).read_all()
    assert gf.ErrorInfo.from_pyarrow_error(e.value).code == gf.ErrorCode.INVALID_TICKET
