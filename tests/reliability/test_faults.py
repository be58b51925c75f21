"""Faults: clients vanishing mid-stream, tasks failing, hanging and cancelled, SIGTERM under load.

After each fault the server must hold nothing for it: no queued or running task, no stored
outcome past its TTL, no result left unclosed (its read lock released), no call counted in flight.
"""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pyarrow.flight as flight
import pytest
from prometheus_client.parser import text_string_to_metric_families

import gooddata_flight_server as gf
from tests.conftest import ServerProcess
from tests.reliability.conftest import WAIT, action, idle, in_process, start_cli_server, wait_until
from tests.reliability.service import ReliabilityMethods, executor_state

_METRICS = {"metrics_host": "127.0.0.1", "metrics_port": 0}


def _command(**spec: Any) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(orjson.dumps(spec))


def _code(error: flight.FlightError) -> int:
    return gf.ErrorInfo.from_pyarrow_error(error).code


def _gauges(server: gf.GoodDataFlightServer) -> dict[str, float]:
    assert server.metrics_url is not None
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def _closed_reaches(methods: ReliabilityMethods, count: int) -> threading.Event:
    """An event set once ``count`` data results have been closed."""
    reached = threading.Event()

    def on_close() -> None:
        if methods.closed_count >= count:
            reached.set()

    methods.on_close = on_close
    on_close()
    return reached


def test_clients_dropping_mid_doget_leak_nothing() -> None:
    """100 clients vanish mid-DoGet of task results: every result is closed, nothing stays in flight."""
    clients = 100
    with in_process({"server": _METRICS}) as (server, methods):
        all_closed = _closed_reaches(methods, clients)
        uri = server.location.uri.decode()
        started = threading.Barrier(clients + 1)
        errors: list[BaseException] = []

        def drop(index: int) -> None:
            client = flight.FlightClient(uri)
            try:
                # 4,000 batches of 64 KiB: far more than gRPC buffers, so the server is mid-stream
                info = client.get_flight_info(_command(kind="reader", batches=4000))
                reader = client.do_get(info.endpoints[0].ticket)
                reader.read_chunk()
                started.wait(WAIT)  # all 100 streams are open at once
                if index % 2:
                    reader.cancel()  # half cancel the call, half just drop the connection
            except BaseException as e:
                errors.append(e)
                started.abort()
            finally:
                client.close()

        threads = [threading.Thread(target=drop, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        started.wait(WAIT)
        for thread in threads:
            thread.join(WAIT)
        assert errors == []
        assert all_closed.wait(WAIT), f"only {methods.closed_count} of {clients} results were closed"
        wait_until(lambda: _gauges(server)["gdfs_rpc_in_flight"] == 0, "no call in flight")
        state = executor_state(methods.executor)
        assert idle(state, stored=False) and state["stored"] == clients
        assert _gauges(server)["gdfs_task_queue"] == 0
        with flight.FlightClient(uri) as client:
            assert action(client, "ping") == [b"pong"]


@pytest.mark.parametrize(
    ("error", "code", "kind"),
    [
        ("value", gf.ErrorCode.BAD_ARGUMENT, flight.FlightServerError),
        ("flight", 1001, flight.FlightServerError),
        ("runtime", gf.ErrorCode.COMMAND_FAILED, flight.FlightServerError),
    ],
)
def test_raising_tasks_answer_their_error_and_leave_nothing(error: str, code: int, kind: type) -> None:
    """Tasks that raise answer the mapped error, without a traceback; their outcomes expire, nothing runs."""
    with in_process({"server": {"task_result_ttl_sec": 0.2}}) as (server, methods):
        with flight.FlightClient(server.location) as client:
            for _ in range(20):
                with pytest.raises(kind) as caught:
                    client.get_flight_info(_command(kind="raise", error=error))
                assert _code(caught.value) == code
                assert "Traceback" not in str(caught.value)
            assert action(client, "ping") == [b"pong"]
        wait_until(lambda: idle(executor_state(methods.executor)), "failed outcomes expired")


def test_task_hanging_past_the_drain_deadline_is_abandoned_then_closed() -> None:
    """A task ignoring cancellation does not hold the stop past the deadline; its late result is closed."""
    with in_process({"server": {"shutdown_timeout_sec": 1}}) as (server, methods):
        closed = _closed_reaches(methods, 1)
        outcome: list[BaseException] = []

        def wait_for_hung_task() -> None:
            with flight.FlightClient(server.location) as client:
                try:
                    client.get_flight_info(_command(kind="hang"))
                except flight.FlightError as e:
                    outcome.append(e)

        caller = threading.Thread(target=wait_for_hung_task)
        caller.start()
        assert methods.hanging.wait(WAIT)
        started = time.monotonic()
        server.stop()
        assert server.wait_for_stop(WAIT)
        assert time.monotonic() - started < 10  # the 1 s deadline, not the task, decided
        caller.join(WAIT)
        assert len(outcome) == 1 and _code(outcome[0]) == gf.ErrorCode.COMMAND_CANCELLED
        assert not closed.is_set()
        methods.release.set()  # the task finally returns a result nobody will read
        assert closed.wait(WAIT), "the late result was never closed"
        wait_until(lambda: idle(executor_state(methods.executor)), "the executor holds nothing")


def test_task_result_cancelled_while_streaming_is_closed_after_the_stream() -> None:
    """Cancelling a result mid-DoGet lets the stream finish, then closes it once; the ticket is gone."""
    batches = 2000
    with in_process() as (server, methods):
        closed = _closed_reaches(methods, 1)
        with flight.FlightClient(server.location) as client:
            info = client.get_flight_info(_command(kind="reader", batches=batches))
            ticket = info.endpoints[0].ticket
            reader = client.do_get(ticket)
            rows = reader.read_chunk().data.num_rows
            assert methods.executor.cancel(ticket.ticket.decode())
            assert not closed.wait(0.2)  # the open stream holds the result's read lock
            for chunk in reader:
                rows += chunk.data.num_rows
            assert rows == batches * 8 * 1024
            assert closed.wait(WAIT)
            with pytest.raises(flight.FlightServerError) as caught:
                client.do_get(ticket).read_all()
            assert _code(caught.value) == gf.ErrorCode.INVALID_TICKET
        assert methods.executor.get_task_submitted_timestamp(ticket.ticket.decode()) is None
        wait_until(lambda: idle(executor_state(methods.executor)), "the executor holds nothing")


def test_running_task_cancelled_answers_cancelled_and_leaves_nothing() -> None:
    """A running task cancelled while its caller waits answers COMMAND_CANCELLED; nothing is left."""
    with in_process({"server": {"task_result_ttl_sec": 0.2}}) as (server, methods):
        outcome: list[BaseException] = []

        def wait_for_task() -> None:
            with flight.FlightClient(server.location) as client:
                try:
                    client.get_flight_info(_command(kind="wait"))
                except flight.FlightError as e:
                    outcome.append(e)

        caller = threading.Thread(target=wait_for_task)
        caller.start()
        assert methods.hanging.wait(WAIT)
        running = [t for t, e in methods.executor._tasks.items() if e.outcome is None]  # type: ignore[attr-defined]
        assert len(running) == 1
        assert methods.executor.cancel(running[0])
        caller.join(WAIT)
        assert len(outcome) == 1 and _code(outcome[0]) == gf.ErrorCode.COMMAND_CANCELLED
        wait_until(lambda: idle(executor_state(methods.executor)), "the cancelled outcome expired")


def test_sigterm_under_load_finishes_in_flight_calls(
    tmp_path: Path, spawn: Callable[..., ServerProcess], record_property: Any
) -> None:
    """SIGTERM under load: calls already in a handler finish, new ones get SHUTTING_DOWN, exit code 0."""
    proc, uri = start_cli_server(spawn, tmp_path, {})
    stop_sent = threading.Event()
    results: dict[str, list[Any]] = {"work_done": [], "after_stop": [], "unexpected": []}
    lock = threading.Lock()

    def load(kind: str, body: bytes) -> None:
        with flight.FlightClient(uri) as client:
            for _ in range(10_000):  # bounded; ends at the first error after SIGTERM
                try:
                    answer = action(client, kind, body)
                    if kind == "work":
                        with lock:
                            results["work_done"].append(answer)
                except (flight.FlightUnavailableError, flight.FlightCancelledError) as e:
                    # CANCELLED: a call that reached gRPC just as the listener shut down, after the
                    # drain (gRPC cancels it before any middleware runs); never one in a handler
                    with lock:
                        results["after_stop" if stop_sent.is_set() else "unexpected"].append(e)
                    if stop_sent.is_set():
                        return
                except Exception as e:
                    with lock:
                        results["unexpected"].append(e)
                    return

    threads = [threading.Thread(target=load, args=("work", b"0.5")) for _ in range(8)]
    threads += [threading.Thread(target=load, args=("echo", b"x")) for _ in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(8):
        proc.wait_for_event("work_started")
    stop_sent.set()  # before the signal: a refusal answered at once must not count as unexpected
    proc.signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    for thread in threads:
        thread.join(WAIT)

    assert results["unexpected"] == []
    started = sum(1 for line in proc.stderr_lines if '"work_started"' in line)
    assert len(results["work_done"]) == started  # every call that reached its handler finished
    assert all(answer == [b"work-done"] for answer in results["work_done"])
    codes = [gf.ErrorInfo.maybe_from_pyarrow_error(e) for e in results["after_stop"]]
    cancelled = sum(isinstance(e, flight.FlightCancelledError) for e in results["after_stop"])
    shutting_down = sum(info is not None and info.code == gf.ErrorCode.SHUTTING_DOWN for info in codes)
    record_property("after_stop", {"shutting_down": shutting_down, "cancelled": cancelled, "work": started})
    assert len(codes) == len(threads)
    # during the drain the gate answers SHUTTING_DOWN; once the listener is gone, the connection fails
    assert any(info is not None and info.code == gf.ErrorCode.SHUTTING_DOWN for info in codes)
    assert all(
        isinstance(e, flight.FlightUnavailableError) or "CANCELLED" in str(e) for e in results["after_stop"]
    )
    assert all(info is None or info.code == gf.ErrorCode.SHUTTING_DOWN for info in codes)
