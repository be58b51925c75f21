"""Server lifecycle: readiness gate, drain, deadline, startup failures, signals."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server.tasks import ThreadTaskExecutor
from gooddata_flight_server.testing import running_server, to_toml
from tests.waiting import wait_until


def _config(tmp_path: Path, **server: Any) -> list[Path]:
    path = tmp_path / "server.toml"
    settings = {"listen_host": "127.0.0.1", "advertise_host": "127.0.0.1", **server}
    path.write_text(to_toml({"server": settings}))
    return [path]


def _error_code(error: flight.FlightError) -> int:
    return gf.ErrorInfo.from_pyarrow_error(error).code


class _Blocking(gf.FlightServerMethods):
    """DoAction "block" holds the call until released; anything else answers at once."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[bytes]:
        if action.type == "block":
            self.entered.set()
            self.release.wait(30)
            return iter([b"finished"])
        return iter([b"ok"])


def _call_in_background(client: flight.FlightClient, action: str) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.extend(r.body.to_pybytes() for r in client.do_action(flight.Action(action, b"")))
        except Exception as e:
            outcome.append(e)

    thread = threading.Thread(target=call)
    thread.start()
    return thread, outcome


def test_calls_get_not_ready_until_the_factory_returned(tmp_path: Path) -> None:
    """While the methods factory runs, every call answers UNAVAILABLE with ErrorInfo NOT_READY."""
    factory_entered, factory_release = threading.Event(), threading.Event()

    def slow_factory(ctx: gf.ServerContext) -> gf.FlightServerMethods:
        factory_entered.set()
        factory_release.wait(30)
        return _Blocking()

    server = gf.create_server(slow_factory, config_files=_config(tmp_path, listen_port=0), dev_log=False)
    server.start()
    try:
        assert factory_entered.wait(10)
        with flight.FlightClient(server.location) as client:  # known once bound, before the factory runs
            with pytest.raises(flight.FlightUnavailableError) as caught:
                list(client.do_action(flight.Action("x", b"")))
            assert _error_code(caught.value) == gf.ErrorCode.NOT_READY
            assert gf.ErrorCode.is_retryable(_error_code(caught.value))
            assert not server.wait_for_start(0)
            factory_release.set()
            assert server.wait_for_start(10)
            assert [r.body.to_pybytes() for r in client.do_action(flight.Action("x", b""))] == [b"ok"]
    finally:
        factory_release.set()
        server.stop()
        assert server.wait_for_stop(30)


def test_drain_lets_in_flight_calls_finish_and_refuses_new_ones() -> None:
    """After stop(), in-flight calls complete, new calls get SHUTTING_DOWN, then the server stops."""
    methods = _Blocking()
    with running_server(methods) as server, flight.FlightClient(server.location) as client:
        thread, outcome = _call_in_background(client, "block")
        assert methods.entered.wait(10)
        server.stop()
        assert wait_until(lambda: not server.health.is_ready()), "the drain began"
        assert not server.wait_for_stop(0.2), "the server must wait for the in-flight call"
        with pytest.raises(flight.FlightUnavailableError) as caught:
            list(client.do_action(flight.Action("x", b"")))
        assert _error_code(caught.value) == gf.ErrorCode.SHUTTING_DOWN
        assert not server.health.is_ready()
        methods.release.set()
        thread.join(10)
        assert server.wait_for_stop(30)
    assert outcome == [b"finished"]
    assert server.stopped_cleanly


def test_drain_deadline_stops_the_server_with_calls_still_running() -> None:
    """A call outliving shutdown_timeout_sec does not keep the server from stopping."""
    methods = _Blocking()
    try:
        with running_server(methods, {"server": {"shutdown_timeout_sec": 0.3}}) as server:
            client = flight.FlightClient(server.location)
            thread, _ = _call_in_background(client, "block")
            assert methods.entered.wait(10)
            server.stop()
            assert server.wait_for_stop(10)
            assert not server.stopped_cleanly
            assert not server.aborted()
    finally:
        methods.release.set()
        thread.join(10)
        client.close()


def test_abort_stops_without_waiting_for_calls() -> None:
    """abort() stops at once even with a call in flight and reports aborted()."""
    methods = _Blocking()
    try:
        with running_server(methods) as server:
            client = flight.FlightClient(server.location)
            thread, _ = _call_in_background(client, "block")
            assert methods.entered.wait(10)
            server.abort()
            assert server.wait_for_stop(10)
            assert server.aborted()
    finally:
        methods.release.set()
        thread.join(10)
        client.close()


def test_factory_failure_is_reraised_and_started_parts_are_stopped(tmp_path: Path) -> None:
    """A failing factory makes wait_for_start/wait_for_stop re-raise it, and the port is released."""
    ports: list[int] = []

    def broken(ctx: gf.ServerContext) -> gf.FlightServerMethods:
        ports.append(int(ctx.location.uri.decode().rsplit(":", 1)[1]))
        raise LookupError("the factory could not find its data")

    server = gf.create_server(broken, config_files=_config(tmp_path, listen_port=0), dev_log=False)
    server.start()
    with pytest.raises(LookupError, match="could not find its data"):
        server.wait_for_start(10)
    with pytest.raises(LookupError):
        server.wait_for_stop(10)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))  # the listener was stopped: the port is free again


def test_factory_returning_the_wrong_type_fails_startup() -> None:
    """A factory that returns something else than FlightServerMethods fails startup with a clear
    error, a FlightMethodsModuleError as in the original package."""
    from gooddata_flight_server.exceptions import FlightMethodsModuleError

    def wrong(ctx: gf.ServerContext) -> Any:
        return object()

    with pytest.raises(FlightMethodsModuleError, match="returned object, expected a FlightServerMethods"):
        with running_server(wrong):
            pass


def test_port_in_use_fails_startup_naming_the_address(tmp_path: Path) -> None:
    """Binding a port that is taken fails startup with an error naming the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = gf.create_server(
            gf.FlightServerMethods(), config_files=_config(tmp_path, listen_port=port), dev_log=False
        )
        server.start()
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            server.wait_for_start(10)


def test_signal_handlers_are_installed_and_restored() -> None:
    """start() on the main thread installs SIGINT/SIGTERM handlers; stopping restores the previous ones."""
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    with running_server(gf.FlightServerMethods()):
        during = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
        assert during != before
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_sigterm_drains_and_a_second_signal_forces_the_stop() -> None:
    """SIGTERM starts a drain that waits for in-flight calls; a second signal stops at once."""
    methods = _Blocking()
    try:
        with running_server(methods) as server:
            client = flight.FlightClient(server.location)
            thread, _ = _call_in_background(client, "block")
            assert methods.entered.wait(10)
            signal.raise_signal(signal.SIGTERM)
            assert not server.wait_for_stop(0.2)
            signal.raise_signal(signal.SIGTERM)
            assert server.wait_for_stop(10)
            assert server.aborted()
    finally:
        methods.release.set()
        thread.join(10)
        client.close()


def test_start_twice_and_stop_before_start() -> None:
    """A server starts once; stop() before start() leaves it stopped and unstartable."""
    with (
        running_server(gf.FlightServerMethods()) as server,
        pytest.raises(RuntimeError, match="already started"),
    ):
        server.start()
    never_started = gf.create_server(gf.FlightServerMethods(), dev_log=False)
    never_started.stop()
    assert never_started.wait_for_stop(1)
    with pytest.raises(RuntimeError):
        never_started.start()


def test_create_server_rejects_what_is_not_methods() -> None:
    """create_server refuses an argument that is neither methods nor a factory."""
    with pytest.raises(TypeError, match="FlightServerMethods or a factory"):
        gf.create_server("not methods", dev_log=False)  # type: ignore[arg-type]


def test_handlers_restore_themselves_when_stopped_off_the_main_thread() -> None:
    """After wait_for_stop off the main thread, the next signal restores and reaches the previous handler."""
    received: list[int] = []

    def previous(signum: int, frame: Any) -> None:
        received.append(signum)

    original = signal.signal(signal.SIGTERM, previous)
    try:
        server = gf.create_server(
            gf.FlightServerMethods(), config_files=(), dev_log=False, setup_logging=False
        )
        server.start()
        assert server.wait_for_start(10)
        stopper = threading.Thread(target=lambda: (server.stop(), server.wait_for_stop(30)))
        stopper.start()
        stopper.join(30)
        signal.raise_signal(signal.SIGTERM)
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, original)


class _TaskWaiting(gf.FlightServerMethods):
    """GetFlightInfo waits for a task that runs until it is cancelled."""

    def __init__(self, ctx: gf.ServerContext) -> None:
        self.ctx = ctx
        self.task_started = threading.Event()

    def get_flight_info(self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor) -> Any:
        started = self.task_started

        class UntilCancelled(gf.Task):
            def __init__(self, cmd: bytes) -> None:
                super().__init__(cmd)
                self.cancelled_event = threading.Event()

            def on_task_cancel(self) -> None:
                self.cancelled_event.set()

            def run(self) -> gf.TaskResult | gf.TaskError:
                started.set()
                self.cancelled_event.wait(60)
                self.check_cancelled()
                raise AssertionError("not reached")

        task = UntilCancelled(descriptor.command)
        self.ctx.task_executor.submit(task)
        result = self.ctx.task_executor.wait_for_result(task.task_id)
        assert result is not None and result.cancelled
        raise gf.ErrorInfo.for_reason(gf.ErrorCode.COMMAND_CANCELLED, "cancelled").to_server_error()


def test_drain_cancels_tasks_before_the_deadline_so_waiting_calls_answer() -> None:
    """Calls waiting on running tasks get COMMAND_CANCELLED before the drain deadline; the stop is clean."""
    outcome: list[Any] = []
    # tasks are cancelled 25 % before the deadline: 1 s left for them to stop and the calls to answer
    with running_server(_TaskWaiting, {"server": {"shutdown_timeout_sec": 4}}) as server:
        client = flight.FlightClient(server.location)

        def call() -> None:
            try:
                client.get_flight_info(flight.FlightDescriptor.for_command(b"long"))
            except flight.FlightError as e:
                outcome.append(e)

        caller = threading.Thread(target=call)
        caller.start()
        executor = server.task_executor
        assert isinstance(executor, ThreadTaskExecutor)
        wait_until(lambda: executor.running_count >= 1, what="the task running on the server's executor")
        server.stop()
        assert server.wait_for_stop(10)
        caller.join(10)
        client.close()
    assert server.stopped_cleanly
    assert len(outcome) == 1
    assert _error_code(outcome[0]) == gf.ErrorCode.COMMAND_CANCELLED


def test_servers_never_started_hold_no_file_descriptors() -> None:
    """Creating and stopping servers that never started leaks no file descriptors."""
    import os

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        server = gf.create_server(gf.FlightServerMethods(), dev_log=False, setup_logging=False)
        server.stop()
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_running_server_leaves_the_callers_log_capture_alone(caplog: pytest.LogCaptureFixture) -> None:
    """running_server without a logging config keeps pytest's caplog and structlog.testing working."""
    import logging

    import structlog

    with structlog.testing.capture_logs() as events:
        with running_server(gf.FlightServerMethods()):
            logging.getLogger("test.during").warning("during the server")
    logging.getLogger("test.after").warning("after the server")
    assert "during the server" in caplog.text and "after the server" in caplog.text
    assert "server_started" in [e["event"] for e in events]


@pytest.mark.parametrize(
    ("server", "warns"),
    [
        ({"listen_host": "0.0.0.0"}, True),
        ({"listen_host": "10.1.2.3"}, True),
        ({"listen_host": "::"}, True),
        ({"listen_host": "127.0.0.1"}, False),
        ({"listen_host": "localhost"}, False),
        ({"listen_host": "::1"}, False),
        ({"listen_host": "0.0.0.0", "authentication_method": "token"}, False),
    ],
)
def test_insecure_bind_warning_decision(tmp_path: Path, server: dict[str, Any], warns: bool) -> None:
    """The insecure-bind warning fires for non-loopback interfaces without authentication only."""
    from gooddata_flight_server._derived import reachable_without_auth
    from gooddata_flight_server._settings_load import load_settings

    path = tmp_path / "c.toml"
    path.write_text(to_toml({"server": server, "enumerated_tokens": {"tokens": ["t"]}}))
    _, config = load_settings([path])
    assert reachable_without_auth(config) is warns
