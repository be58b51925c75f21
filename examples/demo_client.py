"""A scripted tour of the SQL data service: start a fresh server, use it as a client would, stop it.

``make demo`` runs this. The server is the real thing -- the ``gooddata-flight-server`` CLI with
``sql_service/config.toml``, in a subprocess, on free ports, with a throw-away data directory -- and
everything below talks to it over the network, the way any Flight client would:

1. ListFlights: the tables it serves;
2. a query: GetFlightInfo runs it as a task on the server, DoGet fetches the result;
3. DoPut: upload a table, then append to it, then query it with the demo data;
4. a long query polled and given up on, and one cancelled with Flight's standard CancelFlightInfo
   action (``gooddata_flight_server.client``);
5. bad input: an invalid query and a DoPut whose schema clashes, each a structured error;
6. the same server through Flight SQL, with the ADBC driver: a query, the catalog, a prepared
   statement with a parameter, an update with its row count, a bulk ingest;
7. the health endpoints and a few metrics;
8. a graceful stop (SIGTERM).

Exits 0 when every step worked and the server stopped cleanly.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi
import pyarrow
import pyarrow.flight as flight
from prometheus_client.parser import text_string_to_metric_families

import gooddata_flight_server as gf
from gooddata_flight_server import client as gfc
from gooddata_flight_server.flight_protocol import expiration_of

EXAMPLES = Path(__file__).resolve().parent
START_TIMEOUT_SEC = 60.0
STOP_TIMEOUT_SEC = 60.0
SHOWN_METRICS = (
    "gdfs_rpc_requests_total",
    "gdfs_task_completed_total",
    "gdfs_task_cancelled_total",
    "gdfs_task_error_total",
    "gdfs_rpc_sent_rows_total",
    "gdfs_rpc_received_rows_total",
    "sql_service_queries_total",
    "sql_service_rows_loaded_total",
)
REVENUE_SQL = """
SELECT c.country, p.category, count(*) AS orders, round(sum(o.amount), 2) AS revenue
FROM orders o JOIN customers c USING (customer_id) JOIN products p USING (product_id)
GROUP BY ALL ORDER BY revenue DESC LIMIT 6
""".strip()
TARGETS_SQL = """
SELECT t.country, t.target, round(sum(o.amount), 2) AS revenue,
       round(100 * sum(o.amount) / t.target, 1) AS pct_of_target
FROM sales_targets t JOIN customers c USING (country) JOIN orders o USING (customer_id)
GROUP BY t.country, t.target ORDER BY pct_of_target DESC
""".strip()
ENDLESS_SQL = "SELECT sum(x % 7) FROM range(10000000000000) t(x)"


class DemoServer:
    """The SQL service in a subprocess on free ports, followed through its JSON log lines on stderr."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "server.log"
        self._env = {
            **os.environ,
            "GOODDATA_FLIGHT_SERVER__LISTEN_PORT": "0",
            "GOODDATA_FLIGHT_SERVER__ADVERTISE_HOST": "127.0.0.1",
            "GOODDATA_FLIGHT_SERVER__HEALTH_CHECK_PORT": "0",
            "GOODDATA_FLIGHT_SERVER__METRICS_PORT": "0",
            "GOODDATA_FLIGHT_SQL_SERVICE__DATA_DIR": str(workdir / "data"),
        }
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._proc: subprocess.Popen[str] | None = None
        self.ports: dict[str, int] = {}
        self.pid = 0

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "gooddata_flight_server", "start"),
                *("--methods-provider", "sql_service.main", "--config", "sql_service/config.toml"),
            ],
            cwd=EXAMPLES,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self._proc.pid
        threading.Thread(target=self._follow_log, daemon=True).start()
        wanted = {
            "server_started": "flight",
            "health_check_listening": "health",
            "metrics_listening": "metrics",
        }
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while "flight" not in self.ports:
            event = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            if event is None:
                raise RuntimeError("the server exited during startup")
            name = wanted.get(str(event.get("event")))
            if name is not None:
                self.ports[name] = int(event["port"])

    def _follow_log(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        with open(self.log_path, "w", encoding="utf-8") as log:
            for line in self._proc.stderr:
                log.write(line)
                log.flush()
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    self._events.put(record)
        self._events.put(None)

    @property
    def flight_uri(self) -> str:
        return f"grpc://127.0.0.1:{self.ports['flight']}"

    def url(self, endpoint: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[endpoint]}{path}"

    def stop(self) -> int:
        """SIGTERM, then wait for the graceful stop; the exit code (0 = stopped cleanly)."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(STOP_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "".join(self.log_path.read_text(encoding="utf-8").splitlines(keepends=True)[-lines:])


def heading(text: str) -> None:
    print(f"\n== {text}")


def show_table(table: pyarrow.Table, indent: str = "   ") -> None:
    """A plain text rendering of a small table (no pandas needed)."""
    rows = [[str(v) for v in row.values()] for row in table.to_pylist()]
    columns = [f"{field.name}" for field in table.schema]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    print(indent + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print(indent + "  ".join("-" * w for w in widths))
    for row in rows:
        print(indent + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def show_error(what: str, error: flight.FlightError) -> None:
    info = gf.ErrorInfo.from_pyarrow_error(error)
    print(f"   {what}")
    print(f"     -> {type(error).__name__}, ErrorInfo code {gf.ErrorCode.name(info.code)}")
    print(f"        msg: {info.msg}")
    if info.detail:
        detail = info.detail.splitlines()
        print(f"        detail: {detail[0]}" + (f" (+{len(detail) - 1} lines)" if len(detail) > 1 else ""))


def action(client: flight.FlightClient, name: str, body: bytes = b"") -> Any:
    (result,) = list(client.do_action(flight.Action(name, body)))
    return json.loads(result.body.to_pybytes())


def upload(client: flight.FlightClient, table: str, data: pyarrow.Table) -> dict[str, Any]:
    writer, metadata = client.do_put(flight.FlightDescriptor.for_path(table), data.schema)
    writer.write_table(data)
    writer.done_writing()
    ack = metadata.read()
    writer.close()
    return dict(json.loads(ack.to_pybytes())) if ack is not None else {}


def query(client: flight.FlightClient, sql: str) -> tuple[flight.FlightInfo, pyarrow.Table]:
    info = client.get_flight_info(flight.FlightDescriptor.for_command(sql))
    endpoint = info.endpoints[0]
    # The endpoint says where the result is: with several replicas, that is the one that ran the query.
    with flight.FlightClient(endpoint.locations[0]) as data_client:
        return info, data_client.do_get(endpoint.ticket).read_all()


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def flight_sql(server: DemoServer, revenue: pyarrow.Table) -> None:
    heading("7. The same server through Flight SQL: the ADBC driver (DB-API), as BI tools and JDBC use it")
    # autocommit: the service has no transactions (DB-API's default would only warn about that)
    with (
        adbc_driver_flightsql.dbapi.connect(server.flight_uri, autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        print(f"   vendor {conn.adbc_get_info()['vendor_name']}")
        cur.execute(REVENUE_SQL)
        table = cur.fetch_arrow_table()
        if table != revenue:
            raise RuntimeError("the revenue query answered differently through Flight SQL")
        print(f"   cursor.execute(revenue query) -> {table.num_rows} rows, as through plain Flight (step 3)")
        (catalog,) = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        for schema in catalog["catalog_db_schemas"]:
            names = ", ".join(t["table_name"] for t in schema["db_schema_tables"])
            print(f"   catalog {catalog['catalog_name']}, schema {schema['db_schema_name']}: {names}")
        cur.execute("SELECT name, country FROM customers WHERE customer_id = ?", (7,))
        print(f"   prepared, customer_id = 7 -> {cur.fetchall()}")
        cur.execute("CREATE TABLE visits (customer_id INTEGER, visits INTEGER)")
        cur.executemany("INSERT INTO visits VALUES (?, ?)", [(1, 3), (2, 5), (7, 1)])
        print(f"   executemany INSERT INTO visits -> rowcount {cur.rowcount}")
        loaded = cur.adbc_ingest("visit_log", pyarrow.table({"customer_id": [1, 7], "day": ["mon", "tue"]}))
        print(f"   adbc_ingest visit_log -> {loaded} rows")
        cur.execute(
            "SELECT c.name, v.visits FROM visits v JOIN customers c USING (customer_id) ORDER BY 2 DESC"
        )
        show_table(cur.fetch_arrow_table())


def tour(server: DemoServer) -> None:
    heading(f"1. Started the SQL data service with the gooddata-flight-server CLI (pid {server.pid})")
    print(f"   Flight   {server.flight_uri}")
    print(f"   health   {server.url('health', '/ready')} and /live")
    print(f"   metrics  {server.url('metrics', '/metrics')}")
    client = flight.FlightClient(server.flight_uri)

    heading("2. ListFlights: the tables it serves (generated demo data)")
    for info in client.list_flights():
        name = bytes(info.descriptor.path[0]).decode()
        columns = ", ".join(f"{f.name} {f.type}" for f in info.schema)
        print(f"   {name:<10} {info.total_records:>5} rows   {columns}")

    heading("3. A query: GetFlightInfo runs it as a task, DoGet fetches the result")
    print("   " + REVENUE_SQL.replace("\n", "\n   "))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(REVENUE_SQL))
    endpoint = info.endpoints[0]
    print(f"   endpoint {endpoint.locations[0].uri.decode()}, ticket {endpoint.ticket.ticket.decode()}")
    print(f"   the result waits to be read until {expiration_of(endpoint)} (expiration_time)")
    renewed = gfc.renew_flight_endpoint(client, endpoint)
    print(f"   RenewFlightEndpoint -> until {expiration_of(renewed)}")
    revenue = client.do_get(renewed.ticket).read_all()
    show_table(revenue)

    heading("4. DoPut: upload a new table, append to it, query it together with the demo data")
    first = pyarrow.table({"country": ["US", "DE", "CZ"], "target": [900_000.0, 700_000.0, 650_000.0]})
    more = pyarrow.table({"country": ["JP", "FR"], "target": [800_000.0, 600_000.0]})
    print(f"   upload sales_targets (3 rows) -> {upload(client, 'sales_targets', first)}")
    print(f"   upload sales_targets (2 rows) -> {upload(client, 'sales_targets', more)}")
    show_table(query(client, TARGETS_SQL)[1])

    heading("5. Long queries: polled, then given up on; cancelled with CancelFlightInfo")
    endless = flight.FlightDescriptor.for_command(ENDLESS_SQL)
    started = time.monotonic()
    try:
        gfc.get_flight_info(client, endless, timeout=3.0)  # x-quiver-pollable: POLL answers while it runs
        raise RuntimeError("the endless query finished")
    except TimeoutError as e:
        print(f"   gfc.get_flight_info(timeout=3) -> after {time.monotonic() - started:.1f} s: {e}")
    errors: list[flight.FlightError] = []

    def run_endless() -> None:
        try:
            client.get_flight_info(flight.FlightDescriptor.for_command(ENDLESS_SQL))
        except flight.FlightError as e:
            errors.append(e)

    caller = threading.Thread(target=run_endless)
    caller.start()
    deadline = time.monotonic() + 30
    running: list[dict[str, Any]] = []
    while not running and time.monotonic() < deadline:
        running = [q for q in action(client, "list-queries") if q["state"] == "running"]
    if not running:
        raise RuntimeError("the long query did not show up in list-queries")
    print(f"   list-queries -> {running}")
    ticket = flight.Ticket(running[0]["task_id"].encode())  # the ticket the waiting client will get
    info = flight.FlightInfo(pyarrow.schema([]), endless, [flight.FlightEndpoint(ticket, [])], -1, -1)
    print(f"   CancelFlightInfo -> {gfc.cancel_flight_info(client, info).name}")
    caller.join(30)
    if not errors:
        raise RuntimeError("the cancelled query did not fail")
    show_error("the waiting GetFlightInfo:", errors[0])

    heading("6. Bad input gets a structured error (ErrorInfo); the service stays up and loses nothing")
    for sql in ["SELEC country FROM customers", "SELECT * FROM invoices", "DROP TABLE orders"]:
        try:
            client.get_flight_info(flight.FlightDescriptor.for_command(sql))
            raise RuntimeError(f"{sql!r} was accepted")
        except flight.FlightServerError as e:
            show_error(f"GetFlightInfo {sql!r}", e)
    try:
        upload(client, "sales_targets", pyarrow.table({"country": ["BR"], "target": ["a lot"]}))
        raise RuntimeError("the schema clash was accepted")
    except flight.FlightServerError as e:
        show_error("DoPut sales_targets with target as text", e)
    rows = query(client, "SELECT count(*) AS n FROM sales_targets")[1].column("n")[0].as_py()
    print(f"   sales_targets still holds {rows} rows")

    flight_sql(server, revenue)

    heading("8. Health and metrics")
    for path in ("/ready", "/live"):
        print(f"   GET {path:<7} -> {http_status(server.url('health', path))}")
    with urllib.request.urlopen(server.url("metrics", "/metrics"), timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in SHOWN_METRICS and sample.value:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                print(f"   {sample.name}{f'{{{labels}}}' if labels else ''} {sample.value:g}")
    client.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sql-service-demo-") as workdir:
        server = DemoServer(Path(workdir))
        try:
            server.start()
            tour(server)
        except Exception as e:
            print(f"\ndemo failed: {type(e).__name__}: {e}", file=sys.stderr)
            print(f"--- last lines of the server log:\n{server.log_tail()}", file=sys.stderr)
            server.stop()
            return 1
        heading("9. Stopping the server with SIGTERM (graceful: in-flight calls finish first)")
        code = server.stop()
        print(f"   exit code {code}")
        return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
