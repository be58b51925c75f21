"""Health endpoints and Prometheus metrics through real HTTP requests against a running server."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pyarrow
import pyarrow.flight as flight
import pytest
from prometheus_client.parser import text_string_to_metric_families

import gooddata_flight_server as gf
from gooddata_flight_server.testing import running_server
from tests.raw_http import RawClient
from tests.waiting import wait_until

_OPS = {
    "server": {
        "health_check_host": "127.0.0.1",
        "health_check_port": 0,
        "metrics_host": "127.0.0.1",
        "metrics_port": 0,
    }
}

USER_COUNTER = prometheus_client.Counter(
    "test_ops_user_counter", "A user's own counter, declared the plain way."
)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _samples(server: gf.GoodDataFlightServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert server.metrics_url is not None
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class _Methods(gf.FlightServerMethods):
    TABLE = pyarrow.table({"n": list(range(1000))})

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> Any:
        if ticket.ticket == b"endless":

            def batches() -> Iterator[pyarrow.RecordBatch]:
                while True:
                    yield pyarrow.record_batch({"n": list(range(10_000))})

            return flight.GeneratorStream(pyarrow.schema([("n", pyarrow.int64())]), batches())
        if ticket.ticket == b"table":
            return self.TABLE  # a Table returned as it is is streamed (and counted) by the server
        return flight.RecordBatchStream(self.TABLE)

    def do_put(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> None:
        assert type(reader) is flight.MetadataRecordBatchReader, "the service reads pyarrow's own reader"
        table = reader.read_all()
        # the server cannot see what the service reads: the service tells it (rows and bytes metrics)
        context.get_middleware("call_info").count_received(table.num_rows, table.nbytes)

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> list[bytes]:
        if action.type == "block":
            self.entered.set()
            self.release.wait(30)
        if action.type == "fail":
            raise gf.ErrorInfo.bad_argument("no such thing")
        return [b"ok"]


def test_health_endpoints_follow_the_lifecycle() -> None:
    """/ready and /live answer 202 while serving, /ready turns 500 during a drain, other paths 404."""
    methods = _Methods()
    with running_server(methods, _OPS) as server, flight.FlightClient(server.location) as client:
        base = server.health_check_url
        assert base is not None
        assert _status(f"{base}/ready") == 202
        assert _status(f"{base}/live") == 202
        assert _status(f"{base}/metrics") == 404
        caller = threading.Thread(target=lambda: list(client.do_action(flight.Action("block", b""))))
        caller.start()
        assert methods.entered.wait(10)
        server.stop()  # asynchronous: the server thread begins the drain
        assert wait_until(lambda: _status(f"{base}/ready") == 500), "readiness drops once the drain begins"
        assert methods.entered.is_set() and not server.wait_for_stop(0), "while the call still runs"
        assert _status(f"{base}/live") == 202
        methods.release.set()
        caller.join(10)
        assert server.wait_for_stop(30)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{base}/ready", timeout=5)  # the endpoint stopped with the server


def test_live_reports_modules_not_ok() -> None:
    """/live answers 500 while any module is NOT_OK and 202 again once it recovers."""
    with running_server(_Methods(), _OPS) as server:
        live = f"{server.health_check_url}/live"
        server.health.set_module_status("db", gf.ModuleHealthStatus.NOT_OK)
        assert _status(live) == 500
        assert _status(f"{server.health_check_url}/ready") == 202
        server.health.set_module_status("db", gf.ModuleHealthStatus.OK)
        assert _status(live) == 202
        assert server.health.module_statuses == {"db": gf.ModuleHealthStatus.OK}


def test_ready_is_500_before_the_factory_returned() -> None:
    """/ready answers 500 until the methods factory has run."""
    entered, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def slow(ctx: gf.ServerContext) -> gf.FlightServerMethods:
        entered.set()
        release.wait(30)
        return _Methods()

    settings = {"server": {**_OPS["server"], "health_check_port": 0}}
    thread = threading.Thread(target=lambda: _run_with_probe(slow, settings, entered, release, seen))
    thread.start()
    thread.join(60)
    assert seen == [500, 202]


def _run_with_probe(
    factory: Any, settings: Any, entered: threading.Event, release: threading.Event, seen: list[int]
) -> None:
    server = gf.create_server(factory, config_files=[_write_settings(settings)], dev_log=False)
    server.start()
    try:
        assert entered.wait(10)
        seen.append(_status(f"{server.health_check_url}/ready"))  # listening before the factory runs
        release.set()
        server.wait_for_start(10)
        seen.append(_status(f"{server.health_check_url}/ready"))
    finally:
        release.set()
        server.stop()
        server.wait_for_stop(30)


def _write_settings(settings: Any) -> str:
    import tempfile

    from gooddata_flight_server.testing import to_toml

    settings = {
        "server": {
            "listen_host": "127.0.0.1",
            "listen_port": 0,
            "advertise_host": "127.0.0.1",
            **settings["server"],
        }
    }
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(to_toml(settings))
    return f.name


def test_metrics_count_calls_outcomes_and_data() -> None:
    """After known calls the counters, histogram and data totals have the expected values."""
    with running_server(_Methods(), _OPS) as server, flight.FlightClient(server.location) as client:
        before = _samples(server)
        for _ in range(3):
            client.do_get(flight.Ticket(b"table")).read_all()
        list(client.do_action(flight.Action("x", b"")))
        with pytest.raises(flight.FlightServerError):
            list(client.do_action(flight.Action("fail", b"")))
        writer, _ = client.do_put(flight.FlightDescriptor.for_command(b"up"), _Methods.TABLE.schema)
        writer.write_table(_Methods.TABLE)
        writer.close()
        USER_COUNTER.inc()
        after = _samples(server)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("gdfs_rpc_requests_total", method="DoGet", outcome="ok") == 3
    assert delta("gdfs_rpc_requests_total", method="DoAction", outcome="ok") == 1
    assert delta("gdfs_rpc_requests_total", method="DoAction", outcome="bad_request") == 1
    assert delta("gdfs_rpc_requests_total", method="DoPut", outcome="ok") == 1
    assert delta("gdfs_rpc_duration_seconds_count", method="DoGet") == 3
    assert delta("gdfs_rpc_sent_rows_total", method="DoGet") == 3000
    assert delta("gdfs_rpc_sent_bytes_total", method="DoGet") == 3 * _Methods.TABLE.nbytes
    assert delta("gdfs_rpc_received_rows_total", method="DoPut") == 1000
    assert delta("gdfs_rpc_received_bytes_total", method="DoPut") == _Methods.TABLE.nbytes
    assert delta("gdfs_rpc_received_batches_total", method="DoPut") == len(_Methods.TABLE.to_batches())
    assert delta("test_ops_user_counter_total") == 1, "a user's plain prometheus_client metric is served"
    assert ("gdfs_arrow_pool_allocated_bytes", ()) in after
    assert ("gdfs_arrow_pool_peak_bytes", ()) in after
    assert ("gdfs_task_queue", ()) in after
    assert _value(after, "gdfs_rpc_in_flight") == 0
    assert _value(after, "gdfs_http_open_connections", endpoint="metrics") >= 1, "the scrape's own connection"
    assert ("gdfs_http_open_connections", (("endpoint", "health"),)) in after


def test_in_flight_gauge_counts_running_calls() -> None:
    """gdfs_rpc_in_flight counts a call while it runs."""
    methods = _Methods()
    with running_server(methods, _OPS) as server, flight.FlightClient(server.location) as client:
        caller = threading.Thread(target=lambda: list(client.do_action(flight.Action("block", b""))))
        caller.start()
        assert methods.entered.wait(10)
        during = _value(_samples(server), "gdfs_rpc_in_flight")
        methods.release.set()
        caller.join(10)
    assert during == 1


def test_client_cancelling_a_generator_stream_is_counted_as_cancelled() -> None:
    """A DoGet whose client goes away mid-stream of a generator is counted with outcome cancelled."""
    with running_server(_Methods(), _OPS) as server:
        before = _samples(server)
        client = flight.FlightClient(server.location)
        reader = client.do_get(flight.Ticket(b"endless"))
        reader.read_chunk()
        reader.cancel()
        client.close()
        # the call ends on the server shortly after the cancellation reaches it
        deadline_samples = wait_until(
            lambda: (
                _value(_samples(server), "gdfs_rpc_requests_total", method="DoGet", outcome="cancelled")
                - _value(before, "gdfs_rpc_requests_total", method="DoGet", outcome="cancelled")
                >= 1
            )
        )
        assert deadline_samples


def test_auth_failures_are_counted_by_reason() -> None:
    """Rejected tokens are counted in gdfs_auth_failures by reason, without the token anywhere."""
    settings = {
        "server": {**_OPS["server"], "authentication_method": "token"},
        "enumerated_tokens": {"tokens": ["s3cret-token-value"]},
    }
    with running_server(_Methods(), settings) as server, flight.FlightClient(server.location) as client:
        before = _samples(server)
        bad = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer wrong-token")])
        with pytest.raises(flight.FlightUnauthenticatedError):
            list(client.do_action(flight.Action("x", b""), bad))
        with pytest.raises(flight.FlightUnauthenticatedError):
            list(client.do_action(flight.Action("x", b"")))
        after = _samples(server)
        with urllib.request.urlopen(server.metrics_url or "", timeout=10) as response:
            text = response.read().decode()
    assert (
        _value(after, "gdfs_auth_failures_total", reason="invalid_token")
        - _value(before, "gdfs_auth_failures_total", reason="invalid_token")
        == 1
    )
    assert (
        _value(after, "gdfs_auth_failures_total", reason="missing_token")
        - _value(before, "gdfs_auth_failures_total", reason="missing_token")
        == 1
    )
    assert "wrong-token" not in text and "s3cret" not in text
    rejected = _value(
        after, "gdfs_rpc_requests_total", method="DoAction", outcome="unauthenticated"
    ) - _value(before, "gdfs_rpc_requests_total", method="DoAction", outcome="unauthenticated")
    assert rejected == 2, "calls rejected by authentication are counted with their outcome"


def test_calls_refused_while_draining_are_counted_unavailable() -> None:
    """Calls the gate refuses during a drain are counted with outcome unavailable."""
    methods = _Methods()
    with running_server(methods, _OPS) as server, flight.FlightClient(server.location) as client:
        before = _samples(server)
        caller = threading.Thread(target=lambda: list(client.do_action(flight.Action("block", b""))))
        caller.start()
        assert methods.entered.wait(10)
        server.stop()
        assert wait_until(lambda: not server.health.is_ready()), "the drain began"
        with pytest.raises(flight.FlightUnavailableError):
            list(client.do_action(flight.Action("x", b"")))
        after = _samples(server)
        methods.release.set()
        caller.join(10)
    assert (
        _value(after, "gdfs_rpc_requests_total", method="DoAction", outcome="unavailable")
        - _value(before, "gdfs_rpc_requests_total", method="DoAction", outcome="unavailable")
        == 1
    )


def test_a_kept_alive_probe_connection_does_not_outlive_the_server() -> None:
    """A probe's kept-alive connection is closed when the server stops."""
    with running_server(_Methods(), _OPS) as server:
        probe = RawClient(int(server.health_check_url.rsplit(":", 1)[1]))
        assert probe.get("/ready").headers["connection"] == "keep-alive"
    try:
        assert probe.wait_closed(10) is not None
    finally:
        probe.close()


def test_metrics_off_by_default() -> None:
    """Without metrics_host and health_check_host no HTTP endpoint is started."""
    with running_server(_Methods()) as server:
        assert server.metrics_url is None
        assert server.health_check_url is None


def test_housekeeping_runs_with_the_server_and_stops_with_it() -> None:
    """With a short interval the server's housekeeping runs (counted in gdfs_malloc_trim) and ends on stop."""
    settings = {"server": {**_OPS["server"], "malloc_trim_interval_sec": 0.02}}
    before = prometheus_client.REGISTRY.get_sample_value("gdfs_malloc_trim_count") or 0.0
    with running_server(_Methods(), settings) as server:
        assert wait_until(lambda: _value(_samples(server), "gdfs_malloc_trim_count") > before)
    assert not [t for t in threading.enumerate() if t.name == "gdfs-housekeeping"]
