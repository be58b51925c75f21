"""A query round trip through ADBC (Flight SQL) against the same query through plain Flight.

``make bench-flightsql`` (or ``.venv/bin/python -m benchmarks.flightsql [--seconds S] [--reps N]``)
starts the SQL service example with the real CLI in a process of its own, on free ports with a
throw-away data directory, and measures from this process, one call at a time:

- ``flight``: ``GetFlightInfo`` with the SQL text as the command, then ``DoGet`` of the endpoint's
  ticket, with one ``pyarrow.flight.FlightClient`` (the README's way);
- ``adbc``: ``cursor.execute(sql)`` + ``cursor.fetch_arrow_table()`` on one ADBC DB-API connection.
  The cursor prepares the statement once (the query text does not change), so each round trip is
  ``GetFlightInfo(CommandPreparedStatementQuery)`` + ``DoGet``, as a BI tool re-running a query does;
- ``adbc_unprepared``: the ADBC statement without preparing (``CommandStatementQuery``);
- ``flightsql_raw``: ``CommandStatementQuery`` sent by the same pyarrow client as ``flight``: the
  server-side cost of the Flight SQL layer alone, without the ADBC driver.

Paths alternate within each repetition (the order flips every repetition); the table shows the median
round trip and calls per second. ``RATIO flightsql_vs_flight <x>`` is the median ADBC round trip over
the median plain Flight round trip of the small aggregate query (above 1: Flight SQL is slower).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import adbc_driver_flightsql.dbapi
import pyarrow.flight

from gooddata_flight_server.flightsql import codec
from gooddata_flight_server.flightsql._protocol import sql_message

REPO = Path(__file__).resolve().parent.parent
QUERIES = {
    "agg": "SELECT country, count(*) AS n, round(sum(amount), 2) AS revenue "
    "FROM orders JOIN customers USING (customer_id) GROUP BY country ORDER BY country",
    "orders": "SELECT * FROM orders",
}


@contextlib.contextmanager
def sql_service(tmp: Path) -> Iterator[str]:
    """The SQL service through the CLI on a free port; its URI. Stopped with SIGTERM at the end."""
    env = {
        **os.environ,
        "GOODDATA_FLIGHT_SERVER__LISTEN_PORT": "0",
        "GOODDATA_FLIGHT_SERVER__HEALTH_CHECK_HOST": "",
        "GOODDATA_FLIGHT_SERVER__METRICS_HOST": "",
        "GOODDATA_FLIGHT_SQL_SERVICE__DATA_DIR": str(tmp / "data"),
    }
    command = [
        sys.executable,
        "-m",
        "gooddata_flight_server",
        "start",
        "--methods-provider",
        "sql_service.main",
    ]
    proc = subprocess.Popen(
        [*command, "--config", "sql_service/config.toml"],
        cwd=REPO / "examples",
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == "server_started":
                    port = int(event["port"])
                    break
        if port is None:
            raise RuntimeError("the SQL service did not start")
        # keep reading its log so that the pipe never fills up
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield f"grpc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(60)


def rate(call: Callable[[], object], seconds: float) -> list[float]:
    """Round trip times (s) of ``call`` repeated for ``seconds`` after a short warm-up."""
    warm_up = time.monotonic() + min(0.3, seconds / 4)
    while time.monotonic() < warm_up:
        call()
    times: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.5, help="measuring time per path and repetition")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (the path order flips each time)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-flightsql-") as tmp, sql_service(Path(tmp)) as uri:
        client = pyarrow.flight.FlightClient(uri)
        conn = adbc_driver_flightsql.dbapi.connect(uri, autocommit=True)
        cursor = conn.cursor()
        results: dict[tuple[str, str], list[float]] = {}
        rows: dict[str, int] = {}
        for name, sql in QUERIES.items():

            def flight(sql: str = sql) -> int:
                info = client.get_flight_info(pyarrow.flight.FlightDescriptor.for_command(sql))
                return int(client.do_get(info.endpoints[0].ticket).read_all().num_rows)

            def adbc(sql: str = sql) -> int:
                cursor.execute(sql)
                return int(cursor.fetch_arrow_table().num_rows)

            unprepared = conn.cursor()

            def adbc_unprepared(sql: str = sql, cur: object = unprepared) -> int:
                stmt = cur.adbc_statement  # type: ignore[attr-defined]
                stmt.set_sql_query(sql)
                handle, _ = stmt.execute_query()
                return int(pyarrow.RecordBatchReader._import_from_c(handle.address).read_all().num_rows)

            command = codec.pack("CommandStatementQuery", sql_message("CommandStatementQuery")(query=sql))

            def flightsql_raw(command: bytes = command) -> int:
                info = client.get_flight_info(pyarrow.flight.FlightDescriptor.for_command(command))
                return int(client.do_get(info.endpoints[0].ticket).read_all().num_rows)

            paths = {
                "flight": flight,
                "adbc": adbc,
                "adbc_unprepared": adbc_unprepared,
                "flightsql_raw": flightsql_raw,
            }
            rows[name] = flight()
            assert adbc() == adbc_unprepared() == flightsql_raw() == rows[name]
            for rep in range(args.reps):
                order = list(paths) if rep % 2 == 0 else list(reversed(paths))
                for path in order:
                    results.setdefault((name, path), []).extend(rate(paths[path], args.seconds))
            unprepared.close()
        cursor.close()
        conn.close()
        client.close()

    print(f"{'query':<8} {'path':<16} {'rows':>6} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} {'calls/s':>8}")
    for (name, path), times in results.items():
        p50 = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1] if len(times) >= 10 else max(times)
        print(
            f"{name:<8} {path:<16} {rows[name]:>6} {len(times):>6} {p50 * 1e3:>8.2f} {p90 * 1e3:>8.2f} "
            f"{1 / p50:>8.0f}"
        )
    for name in QUERIES:
        flight_p50 = statistics.median(results[(name, "flight")])
        for path, label in (
            ("adbc", "flightsql_vs_flight"),
            ("adbc_unprepared", "flightsql_unprepared_vs_flight"),
            ("flightsql_raw", "flightsql_raw_vs_flight"),
        ):
            ratio = statistics.median(results[(name, path)]) / flight_p50
            suffix = "" if name == "agg" else f"_{name}"
            print(f"RATIO {label}{suffix} {ratio:.3f}")
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
