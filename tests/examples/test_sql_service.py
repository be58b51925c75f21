"""The SQL data service example through real servers: discovery, queries, uploads, actions, errors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow
import pyarrow.flight as flight
import pytest
import structlog
from examples.sql_service.config import SqlServiceConfig
from examples.sql_service.database import Database
from examples.sql_service.demo_data import demo_tables
from examples.sql_service.errors import ClientError
from examples.sql_service.main import sql_service

import gooddata_flight_server as gf
from gooddata_flight_server._settings_load import load_settings
from gooddata_flight_server.testing import running_server
from tests.examples.conftest import Service, error_info
from tests.waiting import wait_until

# Hours of work if nothing stops it: only a cancel, a timeout or a deadline ends it in a test.
ENDLESS_QUERY = "SELECT sum(x % 7) FROM range(10000000000000) t(x)"
DEMO = demo_tables()


def _bad_argument(e: pytest.ExceptionInfo[flight.FlightError], *fragments: str) -> gf.ErrorInfo:
    info = error_info(e)
    assert info.code == gf.ErrorCode.BAD_ARGUMENT, info
    for fragment in fragments:
        assert fragment in info.msg, info.msg
    return info


def _still_serves(service: Service) -> None:
    assert service.scalar("SELECT count(*) FROM orders") == DEMO["orders"].num_rows


def test_list_flights_lists_the_demo_tables(service: Service) -> None:
    """ListFlights gives one FlightInfo per table: path descriptor, schema and row count."""
    infos = {bytes(info.descriptor.path[0]).decode(): info for info in service.client.list_flights()}
    assert sorted(infos) == ["customers", "orders", "products"]
    for name, table in DEMO.items():
        assert infos[name].schema == table.schema
        assert infos[name].total_records == table.num_rows
    prefixed = list(service.client.list_flights(b"ord"))
    assert [bytes(info.descriptor.path[0]) for info in prefixed] == [b"orders"]


def test_query_round_trip(service: Service) -> None:
    """GetFlightInfo runs SQL as a task; its endpoint (here, ticket = task id) serves the rows, as
    often as asked while the result is kept (a small result is held in memory as a table)."""
    sql = "SELECT country, count(*) AS n FROM customers GROUP BY country ORDER BY country"
    info = service.info(sql)
    assert info.descriptor.command == sql.encode()
    (endpoint,) = info.endpoints
    assert [location.uri for location in endpoint.locations] == [service.server.location.uri]
    assert len(endpoint.ticket.ticket) == 32
    table = service.client.do_get(endpoint.ticket).read_all()
    assert table.schema == info.schema
    expected = DEMO["customers"].group_by("country").aggregate([("country", "count")]).sort_by("country")
    assert table.column("country").to_pylist() == expected.column("country").to_pylist()
    assert table.column("n").to_pylist() == expected.column("country_count").to_pylist()
    assert service.client.do_get(endpoint.ticket).read_all() == table


def test_big_result_streams_once(start_service: Callable[..., Service]) -> None:
    """A result bigger than in_memory_result_kb keeps only its first part and streams the rest from
    DuckDB: it can be read once; the second read is COMMAND_RESULT_CONSUMED."""
    service = start_service(batch_size=1000, in_memory_result_kb=4)
    info = service.info("SELECT * FROM orders ORDER BY order_id")
    table = service.client.do_get(info.endpoints[0].ticket).read_all()
    assert table.num_rows == DEMO["orders"].num_rows
    with pytest.raises(flight.FlightServerError) as e:
        service.client.do_get(info.endpoints[0].ticket).read_all()
    assert error_info(e).code == gf.ErrorCode.COMMAND_RESULT_CONSUMED


def test_large_result_streams_in_batches(start_service: Callable[..., Service]) -> None:
    """A result bigger than batch_size reaches the client whole, in several record batches."""
    service = start_service(batch_size=1000)
    info = service.info("SELECT * FROM orders ORDER BY order_id")
    reader = service.client.do_get(info.endpoints[0].ticket)
    batches = [chunk.data for chunk in reader]
    assert len(batches) >= 5
    assert pyarrow.Table.from_batches(batches) == DEMO["orders"]


def test_table_descriptor_from_list_flights_fetches_the_table(service: Service) -> None:
    """The descriptor ListFlights gives works in GetFlightInfo and GetSchema; the table comes back whole."""
    (products,) = [i for i in service.client.list_flights() if i.descriptor.path == [b"products"]]
    info = service.client.get_flight_info(products.descriptor)
    assert info.descriptor.path == [b"products"]
    assert service.client.do_get(info.endpoints[0].ticket).read_all() == DEMO["products"]
    assert service.client.get_schema(products.descriptor).schema == DEMO["products"].schema
    sql = flight.FlightDescriptor.for_command("SELECT product_id, unit_price * 2 AS double FROM products")
    assert service.client.get_schema(sql).schema.names == ["product_id", "double"]


def test_unknown_table(service: Service) -> None:
    """An unknown table, by path or in SQL, is BAD_ARGUMENT naming it; the service stays up."""
    with pytest.raises(flight.FlightServerError) as e:
        service.client.get_flight_info(flight.FlightDescriptor.for_path("nope"))
    _bad_argument(e, "Unknown table 'nope'", "customers, orders, products")
    with pytest.raises(flight.FlightServerError) as e:
        service.info("SELECT * FROM nope")
    info = _bad_argument(e, "Invalid query", "nope")
    assert info.detail is not None and "nope" in info.detail
    _still_serves(service)


def test_invalid_sql(service: Service) -> None:
    """Invalid SQL is BAD_ARGUMENT with DuckDB's message and where it failed; the service stays up."""
    with pytest.raises(flight.FlightServerError) as e:
        service.info("SELEC count(*) FROM orders")
    info = _bad_argument(e, "Invalid query: Parser Error")
    assert info.detail is not None and "SELEC" in info.detail
    with pytest.raises(flight.FlightServerError) as e:
        service.info("SELECT 'x'::INTEGER")
    _bad_argument(e, "Conversion Error")
    with pytest.raises(flight.FlightServerError) as e:
        service.info("   ")
    _bad_argument(e, "empty")
    _still_serves(service)


def test_failure_while_computing_the_result(start_service: Callable[..., Service]) -> None:
    """A query failing on its data is BAD_ARGUMENT, in GetFlightInfo or mid-stream in DoGet alike."""
    service = start_service(batch_size=1000, threads=1, in_memory_result_kb=64)
    failing_early = "SELECT CAST(CASE WHEN x < 5000 THEN '1' ELSE 'x' END AS INTEGER) FROM range(20000) t(x)"
    with pytest.raises(flight.FlightServerError) as e:
        service.info(failing_early)
    _bad_argument(e, "Invalid query: Conversion Error")
    # DuckDB computes a streamed result as it is read: this one fails after DoGet sent many batches
    failing_late = (
        "SELECT CAST(CASE WHEN x < 300000 THEN '1' ELSE 'x' END AS INTEGER) FROM range(400000) t(x)"
    )
    info = service.info(failing_late)
    with pytest.raises(flight.FlightServerError) as e:
        service.client.do_get(info.endpoints[0].ticket).read_all()
    _bad_argument(e, "while its result streamed", "Conversion Error")
    _still_serves(service)


def test_only_single_select_queries_run(service: Service) -> None:
    """Statements that would change data, several statements, or file access are refused; nothing changes."""
    for sql, fragment in [
        ("DROP TABLE orders", "not DROP"),
        ("DELETE FROM orders", "not DELETE"),
        ("SELECT 1; DROP TABLE orders", "exactly one"),
        ("SELECT * FROM read_csv('/etc/passwd')", "Permission"),
        ("ATTACH '/tmp/other.duckdb'", "not ATTACH"),
    ]:
        with pytest.raises(flight.FlightServerError) as e:
            service.info(sql)
        _bad_argument(e, fragment)
    assert sorted(t["name"] for t in service.action("list-tables")) == ["customers", "orders", "products"]
    _still_serves(service)


def test_do_put_creates_then_appends(service: Service) -> None:
    """DoPut creates a missing table, appends when the columns match, and reports both in its metadata."""
    first = pyarrow.table({"sku": ["a", "b", "c"], "qty": [1, 2, 3]})
    assert service.put("stock", first) == {
        "table": "stock",
        "created": True,
        "rows_loaded": 3,
        "total_rows": 3,
    }
    more = pyarrow.table({"SKU": ["d", "e"], "qty": [4, 5]})  # names are case-insensitive
    assert service.put("Stock", more) == {
        "table": "stock",
        "created": False,
        "rows_loaded": 2,
        "total_rows": 5,
    }
    assert service.query("SELECT sku, qty FROM stock ORDER BY qty").column("qty").to_pylist() == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert [bytes(i.descriptor.path[0]) for i in service.client.list_flights(b"stock")] == [b"stock"]


def test_do_put_schema_clash_loses_nothing(service: Service) -> None:
    """A DoPut whose columns differ from the table's is BAD_ARGUMENT saying how; the table is unchanged."""
    service.put("stock", pyarrow.table({"sku": ["a"], "qty": [1]}))
    clashes = [
        pyarrow.table({"sku": ["b"], "qty": ["many"]}),
        pyarrow.table({"sku": ["b"]}),
        pyarrow.table({"item": ["b"], "qty": [2]}),
    ]
    for clash in clashes:
        with pytest.raises(flight.FlightServerError) as e:
            service.put("stock", clash)
        info = _bad_argument(e, "Cannot append to table 'stock'", "Nothing was loaded")
        assert info.detail is not None and "table columns: sku VARCHAR, qty BIGINT" in info.detail
    assert service.query("SELECT * FROM stock").to_pylist() == [{"sku": "a", "qty": 1}]
    with pytest.raises(flight.FlightServerError) as e:
        service.put("orders", pyarrow.table({"order_id": [1]}))
    _bad_argument(e, "orders")
    _still_serves(service)


def test_do_put_needs_a_valid_table_name(service: Service) -> None:
    """DoPut to a command, several path parts or an odd name is BAD_ARGUMENT; no table appears."""
    data = pyarrow.table({"a": [1]})
    for descriptor in [
        flight.FlightDescriptor.for_command("x"),
        flight.FlightDescriptor.for_path("a", "b"),
        flight.FlightDescriptor.for_path("1st"),
        flight.FlightDescriptor.for_path('x"; DROP TABLE orders; --'),
    ]:
        writer, _ = service.client.do_put(descriptor, data.schema)
        with pytest.raises(flight.FlightServerError) as e:
            writer.write_table(data)
            writer.close()
        _bad_argument(e)
    assert len(service.action("list-tables")) == 3
    _still_serves(service)


def test_cancel_action_stops_a_running_query(service: Service) -> None:
    """The cancel action interrupts a running query: its waiting GetFlightInfo gets COMMAND_CANCELLED."""
    errors: list[flight.FlightError] = []

    def run_query() -> None:
        try:
            service.info(ENDLESS_QUERY)
        except flight.FlightError as e:
            errors.append(e)

    caller = threading.Thread(target=run_query)
    caller.start()
    try:
        running = wait_until(
            lambda: [q for q in service.action("list-queries") if q["state"] == "running"],
            what="running query",
        )
        (query,) = running
        assert "range(10000000000000)" in query["sql"]
        answer = service.action("cancel", query["task_id"].encode())
        assert answer == {"task_id": query["task_id"], "known": True, "finished": False, "cancelled": True}
    finally:
        caller.join(30)
    assert not caller.is_alive()
    (error,) = errors
    assert isinstance(error, flight.FlightServerError)
    assert gf.ErrorInfo.from_pyarrow_error(error).code == gf.ErrorCode.COMMAND_CANCELLED
    assert service.action("list-queries") == []
    _still_serves(service)


def test_a_query_is_listed_from_its_creation_on(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing in the instant between a query's creation and its submission to the executor (which
    does not know it yet) shows it queued and does not lose it: it is listed running afterwards."""
    executor = service.server.task_executor
    submit = executor.submit
    in_between: list[Any] = []

    def list_then_submit(task: gf.Task) -> None:
        in_between.append(service.action("list-queries"))  # the instant the race was in
        submit(task)

    monkeypatch.setattr(executor, "submit", list_then_submit)
    errors: list[flight.FlightError] = []

    def run_query() -> None:
        try:
            service.info(ENDLESS_QUERY)
        except flight.FlightError as e:
            errors.append(e)

    caller = threading.Thread(target=run_query)
    caller.start()
    try:
        (running,) = wait_until(
            lambda: [q for q in service.action("list-queries") if q["state"] == "running"], what="running"
        )
        assert service.action("cancel", running["task_id"].encode())["cancelled"] is True
    finally:
        caller.join(30)
    ((listed,),) = in_between
    assert listed["state"] == "queued" and listed["task_id"] == running["task_id"]
    assert (
        len(errors) == 1 and gf.ErrorInfo.from_pyarrow_error(errors[0]).code == gf.ErrorCode.COMMAND_CANCELLED
    )
    wait_until(lambda: service.action("list-queries") == [], what="the cancelled query gone")


def test_list_queries_shows_queued_and_running_but_not_refused(start_service: Callable[..., Service]) -> None:
    """One worker and room for one waiting task: the third query is refused with BACKPRESSURE and is
    not listed; the running and the queued one are, until they are cancelled."""
    service = start_service(server={"task_threads": 1, "task_queue_size": 1})
    errors: list[flight.FlightError] = []

    def run_query() -> None:
        try:
            service.info(ENDLESS_QUERY)
        except flight.FlightError as e:
            errors.append(e)

    def listed_and_submitted(states: list[str]) -> bool:
        # a query is listed from the moment it is created, a moment before the executor takes it
        listed = service.action("list-queries")
        executor = service.server.task_executor
        return sorted(q["state"] for q in listed) == states and all(
            executor.get_task_submitted_timestamp(q["task_id"]) is not None for q in listed
        )

    callers = [threading.Thread(target=run_query) for _ in range(2)]
    try:
        callers[0].start()
        wait_until(lambda: listed_and_submitted(["running"]), what="the first query running")
        callers[1].start()
        wait_until(lambda: listed_and_submitted(["queued", "running"]), what="the second query queued")
        with pytest.raises(flight.FlightError) as refused:
            service.info(ENDLESS_QUERY)
        assert error_info(refused).code == gf.ErrorCode.BACKPRESSURE
        listed = service.action("list-queries")
        assert sorted(q["state"] for q in listed) == ["queued", "running"]
        for query in listed:
            assert service.action("cancel", query["task_id"].encode())["cancelled"] is True
    finally:
        for caller in callers:
            caller.join(30)
    assert not any(caller.is_alive() for caller in callers)
    assert (
        sorted(gf.ErrorInfo.from_pyarrow_error(e).code for e in errors)
        == [gf.ErrorCode.COMMAND_CANCELLED] * 2
    )
    assert service.action("list-queries") == []


def test_cancel_action_leaves_a_finished_result_alone(service: Service) -> None:
    """Cancelling a finished query changes nothing (its result may be streaming); unknown ids are reported."""
    info = service.info("SELECT 42 AS answer")
    ticket = info.endpoints[0].ticket
    answer = service.action("cancel", ticket.ticket)
    assert answer == {"task_id": ticket.ticket.decode(), "known": True, "finished": True, "cancelled": False}
    assert service.client.do_get(ticket).read_all().column("answer").to_pylist() == [42]
    unknown = service.action("cancel", b"0" * 32)
    assert unknown == {"task_id": "0" * 32, "known": False, "finished": False, "cancelled": False}


def test_caller_deadline_cancels_its_query(service: Service) -> None:
    """A caller that gives up (deadline) does not leave its query running on the server."""
    timed_out: list[flight.FlightError] = []

    def run_query() -> None:
        try:
            service.info(ENDLESS_QUERY, flight.FlightCallOptions(timeout=2.0))
        except flight.FlightError as e:
            timed_out.append(e)

    caller = threading.Thread(target=run_query)
    caller.start()
    try:  # the query did reach the server and run: its going away then proves something
        wait_until(
            lambda: [q for q in service.action("list-queries") if q["state"] == "running"], what="running"
        )
    finally:
        caller.join(30)
    assert len(timed_out) == 1 and isinstance(timed_out[0], flight.FlightTimedOutError)
    wait_until(lambda: service.action("list-queries") == [], what="no query left running")
    _still_serves(service)


def test_query_timeout(start_service: Callable[..., Service]) -> None:
    """A query running past query_timeout_sec is stopped; the caller gets TIMEOUT naming the setting."""
    service = start_service(query_timeout_sec=0.3)
    with pytest.raises(flight.FlightTimedOutError) as e:
        service.info(ENDLESS_QUERY)
    info = error_info(e)
    assert info.code == gf.ErrorCode.TIMEOUT
    assert "query_timeout_sec" in info.msg
    _still_serves(service)


def test_actions(service: Service) -> None:
    """ListActions lists cancel, list-tables, list-queries, the Flight SQL actions and the Flight
    protocol's standard ones; bad input refused."""
    actions = {a.type: a.description for a in service.client.list_actions()}
    flight_sql = {"CreatePreparedStatement", "ClosePreparedStatement", "CancelFlightInfo", "CancelQuery"}
    flight_sql.add("RenewFlightEndpoint")
    assert set(actions) == {"cancel", "list-tables", "list-queries"} | flight_sql
    tables = {t["name"]: t for t in service.action("list-tables")}
    assert tables["orders"]["num_rows"] == DEMO["orders"].num_rows
    assert tables["products"]["columns"][0] == {"name": "product_id", "type": "int32"}
    with pytest.raises(flight.FlightServerError) as e:
        service.action("drop-everything")
    _bad_argument(e, "Unknown action 'drop-everything'", "cancel, list-tables, list-queries")
    with pytest.raises(flight.FlightServerError) as e:
        service.action("cancel", b"not-a-task")
    _bad_argument(e, "task id")


def test_data_survives_a_restart(tmp_path: Path, start_service: Callable[..., Service]) -> None:
    """Uploaded data is in the data directory after a restart; the demo data is not created twice."""

    settings = {"sql_service": {"data_dir": str(tmp_path / "kept")}}
    with running_server(sql_service, settings) as server, flight.FlightClient(server.location) as client:
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("notes"), pyarrow.schema([("n", "int64")]))
        writer.write_table(pyarrow.table({"n": [7]}))
        writer.close()
    service = start_service(data_dir=tmp_path / "kept")
    assert service.query("SELECT n FROM notes").to_pylist() == [{"n": 7}]
    _still_serves(service)


def test_demo_data_is_deterministic() -> None:
    """The demo dataset is the same on every call: every replica serves the same numbers."""
    again = demo_tables()
    assert all(again[name] == table for name, table in DEMO.items())
    assert {name: t.num_rows for name, t in DEMO.items()} == {
        "customers": 250,
        "products": 14,
        "orders": 5000,
    }


def test_config_is_validated(tmp_path: Path) -> None:
    """Bad [sql_service] settings are all reported at once, each with its environment variable."""
    path = tmp_path / "bad.toml"
    path.write_text('[sql_service]\nbatch_size = 0\nquery_timeout_sec = "soon"\ndemo_data = "maybe"\n')
    settings, _ = load_settings([path])
    with pytest.raises(ValueError) as e:
        SqlServiceConfig.from_settings(settings)
    message = str(e.value)
    for env in ["BATCH_SIZE", "QUERY_TIMEOUT_SEC", "DEMO_DATA"]:
        assert f"GOODDATA_FLIGHT_SQL_SERVICE__{env}" in message
    path.write_text('[sql_service]\ndemo_data = "no"\nthreads = 2\n')
    settings, _ = load_settings([path])
    config = SqlServiceConfig.from_settings(settings)
    assert (config.demo_data, config.threads, config.batch_size) == (False, 2, 65536)


def test_database_errors_split_client_and_server_faults(tmp_path: Path) -> None:
    """Request errors become ClientError (BAD_ARGUMENT); a fatal error propagates and is reported."""
    fatal: list[bool] = []
    database = Database.open(tmp_path / "db.duckdb", on_fatal=lambda: fatal.append(True))
    try:
        with pytest.raises(ClientError) as client, database.errors("Invalid query"):
            raise duckdb.CatalogException("Catalog Error: Table with name x does not exist!")
        assert client.value.info.code == gf.ErrorCode.BAD_ARGUMENT
        assert client.value.info.msg == "Invalid query: Catalog Error: Table with name x does not exist!"
        with pytest.raises(duckdb.FatalException), database.errors("Invalid query"):
            raise duckdb.FatalException("FATAL Error: database invalidated")
        assert fatal == [True]
    finally:
        database.close()


_DYING_UPLOADER = """
import os, sys
import pyarrow, pyarrow.flight as flight
client = flight.FlightClient(sys.argv[1])
batch = pyarrow.record_batch({"id": list(range(1000))})
writer, _ = client.do_put(flight.FlightDescriptor.for_path(sys.argv[2]), batch.schema)
for _ in range(5):
    writer.write_batch(batch)
print("written", flush=True)
sys.stdin.read()  # until the test has seen the upload arrive
os._exit(0)  # the client dies mid-upload: no done_writing, no close
"""


def test_upload_interrupted_by_a_dying_client_stores_nothing(service: Service, tmp_path: Path) -> None:
    """A client that dies mid-DoPut leaves no table and no rows behind; the service keeps serving."""
    import subprocess
    import sys

    service.put("kept", pyarrow.table({"id": [1, 2, 3]}))
    script = tmp_path / "uploader.py"
    script.write_text(_DYING_UPLOADER)
    location = service.server.location.uri.decode()
    with structlog.testing.capture_logs() as logs:
        for table in ("kept", "partial"):
            with subprocess.Popen(
                [sys.executable, str(script), location, table],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            ) as uploader:
                assert uploader.stdout is not None and uploader.stdin is not None
                assert uploader.stdout.readline().strip() == "written"
                # the upload is on the server before the client dies: the test then proves something
                wait_until(lambda: service.server.in_flight_calls == 1, what="the upload on the server")
                uploader.stdin.close()  # the uploader dies
                assert uploader.wait(60) == 0
            # its DoPut call ends on the server once it notices
            wait_until(lambda: service.server.in_flight_calls == 0, what="the interrupted upload to end")
    # the service noticed each interruption (pyarrow ends the reader as if the stream were complete)
    assert [e["table"] for e in logs if e["event"] == "upload_interrupted"] == ["kept", "partial"]
    tables = {t["name"]: t for t in service.action("list-tables")}
    assert "partial" not in tables
    assert service.scalar("SELECT count(*) FROM kept") == 3
    _still_serves(service)


def test_server_failure_answers_with_a_reference_only(start_service: Callable[..., Service]) -> None:
    """An out-of-memory error (the server's failure, not the query's) reaches the client as
    COMMAND_FAILED with a generic message and a reference id: none of DuckDB's text, no path; the
    server keeps serving."""
    service = start_service(memory_limit="40MB", threads=1)
    with structlog.testing.capture_logs() as logs, pytest.raises(flight.FlightServerError) as e:
        service.info("SELECT list(x::VARCHAR || repeat('y', 50)) FROM range(3000000) t(x)")
    info = error_info(e)
    assert info.code == gf.ErrorCode.COMMAND_FAILED
    assert info.msg.startswith("The query failed on the server. Reference: ")
    assert info.detail is None
    assert "Memory" not in str(e.value) and "/" not in str(e.value)
    ref = info.msg.rsplit(" ", 1)[1]
    (logged,) = [event for event in logs if event.get("error_ref") == ref]
    assert logged["event"] == "query_failed_on_server"
    assert "Out of Memory" in str(logged["exc_info"])
    _still_serves(service)
