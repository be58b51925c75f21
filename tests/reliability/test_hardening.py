"""What an attacker or an unlucky operator may throw at a server, probed on loopback.

- Four clients flood the SQL example with queries whose ~11 MB results they never fetch: memory
  stays within the stored-result budget plus a stated margin, the excess is refused with the
  retryable BACKPRESSURE, and the server keeps serving (the flood that once took it from 1 to 8 GB).
- A client sends thousands of bad tokens: the log holds a bounded number of lines about it, the
  metrics count every one.
- Every kind of error every RPC can answer carries no traceback text and no filesystem path.
- Settings naming a FIFO or a device fail at once with exit code 2 instead of hanging or reading
  without end.
"""

from __future__ import annotations

import errno
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server.testing import running_server, to_toml
from tests.conftest import CLI, REPO, LogFile, ServerProcess, run_cli
from tests.reliability.conftest import rss_bytes

MIB = 1 << 20
EXAMPLES = REPO / "examples"
# ~11 MB of Arrow data per result, the size of the flood that was measured unbounded
FLOOD_QUERY = "SELECT x, repeat('y', 100) || x::VARCHAR AS s FROM range(100000) t(x) WHERE x >= {n} % 3"
BUDGET = 192 * MIB
MARGIN = 320 * MIB  # allocator slack, DuckDB's own buffers and the in-flight results of 4 workers


def _sql_service(
    spawn: Callable[..., ServerProcess], tmp_path: Path, **server: Any
) -> tuple[ServerProcess, int]:
    config = tmp_path / "server.toml"
    settings = {
        "server": {"listen_port": 0, "advertise_host": "127.0.0.1", **server},
        "sql_service": {"data_dir": str(tmp_path / "data"), "threads": 2},
    }
    config.write_text(to_toml(settings))
    proc = spawn(
        [*CLI, "start", "--methods-provider", "sql_service.main", "--config", str(config)],
        cwd=EXAMPLES,
        env={"PYTHONPATH": str(REPO / "src")},
    )
    started = proc.wait_for_event("server_started")
    return proc, int(started["port"])


@pytest.mark.parametrize("seconds", [6, pytest.param(30, marks=pytest.mark.slow)], ids=["6s", "30s"])
def test_unfetched_results_stay_within_the_budget(
    spawn: Callable[..., ServerProcess], tmp_path: Path, seconds: int, record_property: Any
) -> None:
    proc, port = _sql_service(
        spawn, tmp_path, task_result_max_bytes=BUDGET, task_result_ttl_sec=600, task_threads=4
    )
    uri = f"grpc://127.0.0.1:{port}"
    with flight.FlightClient(uri) as client:  # warm up: DuckDB and Arrow allocate their pools once
        for n in range(3):
            info = client.get_flight_info(
                flight.FlightDescriptor.for_command(FLOOD_QUERY.format(n=n).encode())
            )
            client.do_get(info.endpoints[0].ticket).read_all()
    baseline = rss_bytes(proc.proc.pid)
    stored, refused, failures = [], [0], []
    peak = [baseline]
    stop = threading.Event()

    def flood(worker: int) -> None:
        with flight.FlightClient(uri) as client:
            n = worker
            while not stop.is_set():
                n += 4
                descriptor = flight.FlightDescriptor.for_command(FLOOD_QUERY.format(n=n).encode())
                try:
                    stored.append(client.get_flight_info(descriptor))
                except flight.FlightUnavailableError as e:
                    assert gf.ErrorInfo.from_pyarrow_error(e).code == gf.ErrorCode.BACKPRESSURE
                    refused[0] += 1
                    stop.wait(0.05)  # a client that was told to back off does
                except Exception as e:  # the test reports it; the flood goes on
                    failures.append(e)

    workers = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak[0] = max(peak[0], rss_bytes(proc.proc.pid))
        time.sleep(0.05)  # sampling RSS of another process: there is no event to wait for
    # still serving: a stored result streams in full while the flood holds the budget full
    with flight.FlightClient(uri) as client:
        assert client.do_get(stored[0].endpoints[0].ticket).read_all().num_rows > 60000
    stop.set()
    for worker in workers:
        worker.join(30)
    growth = peak[0] - baseline
    record_property("rss_baseline_mib", baseline // MIB)
    record_property("rss_growth_mib", growth // MIB)
    record_property("results_stored", len(stored))
    record_property("refused", refused[0])
    assert not failures, failures[:3]
    assert refused[0] > 0, "the flood never reached the budget"
    assert len(stored) * 10 * MIB <= BUDGET + 4 * 11 * MIB  # at most task_threads past the budget
    assert growth <= BUDGET + MARGIN, f"RSS grew by {growth // MIB} MiB over a {BUDGET // MIB} MiB budget"


def test_bad_token_flood_writes_a_bounded_log(log_file: LogFile) -> None:
    """2,000 calls with bad tokens: every one refused and counted, a bounded number logged, and the
    lines that follow a gap say how many were left out."""

    class Ping(gf.FlightServerMethods):
        def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[bytes]:
            yield b"pong"

    settings = {
        "server": {"authentication_method": "token", "metrics_host": "127.0.0.1", "metrics_port": 0},
        "enumerated_tokens": {"tokens": ["good-token"]},
    }
    with running_server(Ping(), settings, logging_config=log_file.ini) as server:
        with flight.FlightClient(server.location) as client:
            bad = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer bad-token")])
            for _ in range(2000):
                with pytest.raises(flight.FlightUnauthenticatedError):
                    list(client.do_action(flight.Action("ping", b""), bad))
        assert server.metrics_url is not None
        with urllib.request.urlopen(server.metrics_url, timeout=10) as answer:
            text = answer.read().decode()
    counted = [
        line
        for line in text.splitlines()
        if line.startswith('gdfs_auth_failures_total{reason="invalid_token"}')
    ]
    assert counted and float(counted[0].split()[-1]) >= 2000
    logged = log_file.events("auth_failed")
    assert 0 < len(logged) <= 40, len(logged)  # 20 per 10 s window; the test takes a few seconds
    assert len(log_file.lines()) < 200


_SECRETS = ("Traceback", 'File "', "/site-packages/", str(REPO))


def test_no_error_sent_to_clients_holds_a_traceback_or_a_path() -> None:
    """Errors of every RPC kind, through every path: not implemented, a bug in the service, a task
    that fails, a bad ticket, a refused token. GetSchema is the documented exception: pyarrow adds
    its traceback text to every GetSchema error (see the README's known limitations)."""

    class Broken(gf.FlightServerMethods):
        def __init__(self, ctx: gf.ServerContext) -> None:
            self._ctx = ctx

        def list_flights(self, context: flight.ServerCallContext, criteria: bytes) -> Any:
            raise KeyError(f"secret {__file__}")

        def get_flight_info(
            self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
        ) -> Any:
            class Failing(gf.Task):
                def run(self) -> gf.TaskResult:
                    # a stdlib error naming a file: the path is left out of what the client gets
                    raise FileNotFoundError(errno.ENOENT, "No such file or directory", __file__)

            task = Failing(b"x")
            self._ctx.task_executor.submit(task)
            execution = self._ctx.task_executor.wait_for_result(task.task_id)
            assert execution is not None and execution.error is not None
            raise execution.error.as_flight_error(for_client=True)

        def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> Any:
            return self.do_get_task_result(context, self._ctx.task_executor, ticket.ticket.decode())

        def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Any:
            def results() -> Iterator[bytes]:
                yield b"one"
                raise RuntimeError(f"mid-stream {__file__}")

            return results()

    descriptor = flight.FlightDescriptor.for_command(b"x")
    texts: dict[str, str] = {}
    with running_server(Broken) as server, flight.FlightClient(server.location) as client:
        calls: dict[str, Callable[[], Any]] = {
            "ListFlights (a bug)": lambda: list(client.list_flights()),
            "GetFlightInfo (a failed task)": lambda: client.get_flight_info(descriptor),
            "DoGet (unknown ticket)": lambda: client.do_get(flight.Ticket(b"nope")).read_all(),
            "DoAction (fails mid-stream)": lambda: list(client.do_action(flight.Action("a", b""))),
            "CancelFlightInfo (bad body)": lambda: list(
                client.do_action(flight.Action("CancelFlightInfo", b"\x0a"))
            ),
        }

        def put() -> None:
            writer, _ = client.do_put(descriptor, pyarrow.schema([("a", pyarrow.int64())]))
            writer.close()

        def exchange() -> None:
            writer, _ = client.do_exchange(descriptor)
            writer.close()

        calls["DoPut (not implemented)"] = put
        calls["DoExchange (not implemented)"] = exchange
        for name, call in calls.items():
            with pytest.raises(Exception) as caught:
                call()
            texts[name] = f"{caught.value} {getattr(caught.value, 'extra_info', b'')!r}"
    settings = {"server": {"authentication_method": "token"}, "enumerated_tokens": {"tokens": ["t"]}}
    with (
        running_server(gf.FlightServerMethods(), settings) as server,
        flight.FlightClient(server.location) as client,
    ):
        with pytest.raises(flight.FlightUnauthenticatedError) as caught:
            list(client.list_flights())
        texts["ListFlights (no token)"] = str(caught.value)
    assert (
        "There was an error while running task: [Errno 2] No such file or directory"
        in texts["GetFlightInfo (a failed task)"]
    )
    for name, text in texts.items():
        for secret in _SECRETS:
            assert secret not in text, (name, secret, text)


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("where", ["config", "certificate"])
def test_settings_naming_a_fifo_or_a_device_fail_at_once(tmp_path: Path, kind: str, where: str) -> None:
    """--config or a certificate setting naming a FIFO (reading it would block) or /dev/zero (reading
    it never ends) is a one-line configuration error, exit code 2, within seconds."""
    if kind == "fifo":
        bad = tmp_path / "named.pipe"
        os.mkfifo(bad)
    else:
        bad = Path("/dev/zero")
    args = ["start", "--methods-provider", "my_service.main"]
    env = {"GOODDATA_FLIGHT_SERVER__LISTEN_PORT": "0"}
    if where == "config":
        args += ["--config", str(bad)]
    else:
        key = tmp_path / "key.pem"
        key.write_text("not read either")
        env |= {
            "GOODDATA_FLIGHT_SERVER__USE_TLS": "true",
            "GOODDATA_FLIGHT_SERVER__TLS_CERTIFICATE": f"@{bad}",
            "GOODDATA_FLIGHT_SERVER__TLS_PRIVATE_KEY": f"@{key}",
        }
    started = time.monotonic()
    result = run_cli(args, EXAMPLES, env)
    assert time.monotonic() - started < 20
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "expected a regular file" in lines[0], lines
