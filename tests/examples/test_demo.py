"""`make demo`: the scripted client tour runs against a fresh server and ends cleanly."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import EXAMPLES, REPO


def test_demo_runs_end_to_end() -> None:
    """The demo starts a server, shows every step's result, health and metrics, and stops it: exit 0."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo_client.py")],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in [
        "ListFlights",
        "orders      5000 rows",
        "upload sales_targets (2 rows) -> {'table': 'sales_targets', 'created': False",
        "ErrorInfo code command_cancelled (6)",
        "ErrorInfo code bad_argument (1)",
        "Cannot append to table 'sales_targets'",
        "sales_targets still holds 5 rows",
        "vendor gooddata-flight-server sql_service (DuckDB)",
        "catalog sql_service, schema main: customers, orders, products, sales_targets",
        "executemany INSERT INTO visits -> rowcount 3",
        "adbc_ingest visit_log -> 2 rows",
        "GET /ready  -> 202",
        "GET /live   -> 202",
        'gdfs_rpc_requests_total{method="GetFlightInfo",outcome="ok"}',
        "gdfs_task_completed_total",
        "sql_service_rows_loaded_total 5",
        "exit code 0",
    ]:
        assert expected in out, f"{expected!r} missing from:\n{out}"
