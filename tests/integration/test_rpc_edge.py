"""The RPC edge through a real server and client: defaults, error boundary, middleware, context."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow
import pyarrow.flight as flight
import pytest
import structlog

import gooddata_flight_server as gf
from gooddata_flight_server.testing import running_server
from tests.conftest import LogFile


def _client(server: gf.GoodDataFlightServer) -> flight.FlightClient:
    return flight.FlightClient(server.location)


def test_every_rpc_is_not_implemented_by_default() -> None:
    """A methods object that overrides nothing answers NOT_IMPLEMENTED on the RPCs: an ErrorInfo
    with code NOT_IMPLEMENTED naming the RPC, and no traceback text (GetSchema, where pyarrow
    formats every error with one, answers the gRPC status UNIMPLEMENTED instead). ListActions lists
    the Flight protocol's standard actions, which the server answers itself."""
    descriptor = flight.FlightDescriptor.for_command(b"x")
    with running_server(gf.FlightServerMethods()) as server, _client(server) as client:

        def put() -> None:
            writer, _ = client.do_put(descriptor, pyarrow.schema([("a", pyarrow.int64())]))
            writer.close()

        def exchange() -> None:
            writer, _ = client.do_exchange(descriptor)
            writer.close()

        calls = {
            "ListFlights": lambda: list(client.list_flights()),
            "GetFlightInfo": lambda: client.get_flight_info(descriptor),
            "DoGet": lambda: client.do_get(flight.Ticket(b"t")).read_all(),
            "DoAction": lambda: list(client.do_action(flight.Action("a", b""))),
            "DoPut": put,
            "DoExchange": exchange,
        }
        for name, call in calls.items():
            with pytest.raises(flight.FlightServerError) as caught:
                call()
            info = gf.ErrorInfo.from_pyarrow_error(caught.value)
            assert (info.code, info.msg) == (
                gf.ErrorCode.NOT_IMPLEMENTED,
                f"{name} is not implemented by this service.",
            )
            assert "Traceback" not in str(caught.value)
        with pytest.raises(pyarrow.ArrowNotImplementedError, match="GetSchema is not implemented"):
            client.get_schema(descriptor)
        assert [a.type for a in client.list_actions()] == ["CancelFlightInfo", "RenewFlightEndpoint"]


class _Failing(gf.FlightServerMethods):
    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Any:
        if action.type == "raise":
            raise RuntimeError("secret-internal-detail")
        if action.type == "flight-error":
            raise gf.ErrorInfo.for_reason(1001, "custom failure").to_user_error()
        if action.type == "generator":

            def results() -> Iterator[bytes]:
                yield b"first"
                raise KeyError("secret-in-generator")

            return results()
        return [b"ok"]

    def list_flights(self, context: flight.ServerCallContext, criteria: bytes) -> Iterator[flight.FlightInfo]:
        raise ZeroDivisionError("secret-list")
        yield  # pragma: no cover


def test_unexpected_error_reaches_client_as_internal_with_reference(log_file: LogFile) -> None:
    """An unexpected exception becomes INTERNAL with ErrorInfo and a reference id; the log has the trace."""
    with running_server(_Failing(), logging_config=log_file.ini) as server, _client(server) as client:
        with pytest.raises(flight.FlightInternalError) as caught:
            list(client.do_action(flight.Action("raise", b"")))
    error = caught.value
    info = gf.ErrorInfo.from_pyarrow_error(error)
    assert info.code == gf.ErrorCode.INTERNAL_ERROR
    assert "secret-internal-detail" not in str(error)
    assert "Traceback" not in str(error)
    (logged,) = log_file.events("rpc_unexpected_error")
    assert logged["error_ref"] in info.msg
    assert "secret-internal-detail" in logged["exception"]
    assert logged["rpc"] == "DoAction"


def test_errors_raised_while_iterating_results_are_guarded() -> None:
    """Exceptions from result generators (DoAction, ListFlights) are turned into INTERNAL too."""
    with running_server(_Failing()) as server, _client(server) as client:
        with pytest.raises(flight.FlightInternalError) as in_action:
            list(client.do_action(flight.Action("generator", b"")))
        with pytest.raises(flight.FlightInternalError) as in_list:
            list(client.list_flights())
    for caught in (in_action, in_list):
        assert "secret" not in str(caught.value)
        assert gf.ErrorInfo.from_pyarrow_error(caught.value).code == gf.ErrorCode.INTERNAL_ERROR


def test_flight_errors_pass_unchanged() -> None:
    """A FlightError raised by the service reaches the client with its type and ErrorInfo."""
    with running_server(_Failing()) as server, _client(server) as client:
        with pytest.raises(flight.FlightServerError) as caught:
            list(client.do_action(flight.Action("flight-error", b"")))
    info = gf.ErrorInfo.from_pyarrow_error(caught.value)
    assert (info.code, info.msg) == (1001, "custom failure")


class _Recording(gf.FlightServerMethods):
    def __init__(self, ctx: gf.ServerContext) -> None:
        self.ctx = ctx
        self.ended = threading.Event()
        self.seen: dict[str, Any] = {}

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.FlightDataStream:
        call_info = self.call_info_middleware(context)
        self.seen["method"] = call_info.info.method
        self.seen["headers"] = call_info.headers
        finalizer = self.call_finalizer_middleware(context)

        def failing(_: BaseException | None) -> None:
            raise RuntimeError("finalizer failure must not stop the others")

        finalizer.register_on_end(failing)
        finalizer.register_on_end(lambda error: self.ended.set())
        return flight.RecordBatchStream(pyarrow.table({"opt": [self.ctx.settings.get("my_service.opt1")]}))


def test_context_call_info_and_finalizers() -> None:
    """Handlers see settings, call info with lowercase headers, and every finalizer runs at call end."""
    created: list[_Recording] = []

    @gf.flight_server_methods
    def factory(ctx: gf.ServerContext) -> gf.FlightServerMethods:
        created.append(_Recording(ctx))
        return created[0]

    with running_server(factory, {"my_service": {"opt1": "value"}}) as server, _client(server) as client:
        options = flight.FlightCallOptions(headers=[(b"x-custom", b"abc")])
        table = client.do_get(flight.Ticket(b"t"), options).read_all()
        assert created[0].ended.wait(10)
    methods = created[0]
    assert table.column("opt").to_pylist() == ["value"]
    assert methods.seen["method"] == flight.FlightMethod.DO_GET
    assert methods.seen["headers"]["x-custom"] == ["abc"]
    assert methods.ctx.location.uri.decode().endswith(f":{server.location.uri.decode().rsplit(':', 1)[1]}")
    assert methods.ctx.task_executor is server.task_executor
    assert methods.ctx.health is server.health


def test_port_zero_advertises_the_bound_port() -> None:
    """With listen_port 0 the location carries the real port the server is bound to."""
    with running_server(gf.FlightServerMethods()) as server:
        port = int(server.location.uri.decode().rsplit(":", 1)[1])
        assert port > 0
        with _client(server) as client, pytest.raises(flight.FlightServerError, match="not implemented"):
            list(client.list_flights())  # the server answers there


def test_many_servers_in_one_process() -> None:
    """Several servers can run side by side in one process and each serves its own data."""

    class Static(gf.FlightServerMethods):
        def __init__(self, value: int) -> None:
            self.value = value

        def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.FlightDataStream:
            return flight.RecordBatchStream(pyarrow.table({"v": [self.value]}))

    with running_server(Static(1)) as first, running_server(Static(2)) as second:
        assert first.location != second.location
        for server, value in ((first, 1), (second, 2)):
            with _client(server) as client:
                assert client.do_get(flight.Ticket(b"")).read_all().column("v").to_pylist() == [value]


def test_advertise_host_and_port_are_put_into_the_location() -> None:
    """advertise_host and advertise_port replace the bound address in ctx.location."""
    with running_server(
        gf.FlightServerMethods(), {"server": {"advertise_host": "data.example.com", "advertise_port": 443}}
    ) as server:
        assert server.location.uri.decode() == "grpc://data.example.com:443"


def test_ipv6_advertise_host_is_bracketed() -> None:
    """An IPv6 advertise_host (a pod IP on IPv6 clusters) gives a valid location URI."""
    with running_server(gf.FlightServerMethods(), {"server": {"advertise_host": "fd00::1"}}) as server:
        uri = server.location.uri.decode()
    assert uri.startswith("grpc://[fd00::1]:")


class _Streaming(gf.FlightServerMethods):
    """Streams whose data source fails half-way, the way a broken cursor would."""

    def __init__(self, ctx: gf.ServerContext) -> None:
        self.ctx = ctx

    @staticmethod
    def _failing_reader() -> pyarrow.RecordBatchReader:
        schema = pyarrow.schema([("a", pyarrow.int64())])

        def batches() -> Iterator[pyarrow.RecordBatch]:
            yield pyarrow.record_batch({"a": [1, 2]})
            raise RuntimeError("cursor died: password=secret-in-stream")

        return pyarrow.RecordBatchReader.from_batches(schema, batches())

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> Any:
        if ticket.ticket == b"reader":
            return self._failing_reader()
        task_id = ticket.ticket.decode()
        return self.do_get_task_result(context, self.ctx.task_executor, task_id)

    def get_flight_info(self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor) -> Any:
        reader = self._failing_reader()

        class ReaderTask(gf.Task):
            def run(self) -> gf.TaskResult | gf.TaskError:
                return gf.FlightDataTaskResult.for_data(reader)

        task = ReaderTask(descriptor.command)
        self.ctx.task_executor.submit(task)
        self.ctx.task_executor.wait_for_result(task.task_id)
        endpoint = flight.FlightEndpoint(task.task_id.encode(), [self.ctx.location])
        return flight.FlightInfo(reader.schema, descriptor, [endpoint], -1, -1)

    def get_schema(self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor) -> Any:
        raise gf.ErrorInfo.bad_argument("secret-schema-frame")


@pytest.mark.parametrize("source", ["reader", "task"])
def test_failure_while_streaming_reaches_client_as_internal(source: str, log_file: LogFile) -> None:
    """A reader (returned by do_get or held by a task result) failing mid-stream gives INTERNAL, no trace."""
    with running_server(_Streaming, logging_config=log_file.ini) as server, _client(server) as client:
        if source == "reader":
            ticket = flight.Ticket(b"reader")
        else:
            ticket = client.get_flight_info(flight.FlightDescriptor.for_command(b"q")).endpoints[0].ticket
        with pytest.raises(flight.FlightInternalError) as caught:
            client.do_get(ticket).read_all()
    assert "secret-in-stream" not in str(caught.value)
    assert "Traceback" not in str(caught.value)
    info = gf.ErrorInfo.from_pyarrow_error(caught.value)
    assert info.code == gf.ErrorCode.INTERNAL_ERROR
    (logged,) = log_file.events("rpc_unexpected_error")
    assert logged["error_ref"] in info.msg and "secret-in-stream" in logged["exception"]


def test_get_schema_errors_lose_their_error_info_but_not_user_frames() -> None:
    """pyarrow does not convert GetSchema's Flight errors (a known limitation): no user frame leaks."""
    with running_server(_Streaming) as server, _client(server) as client:
        with pytest.raises(pyarrow.ArrowException) as caught:
            client.get_schema(flight.FlightDescriptor.for_command(b"x"))
    assert "secret-schema-frame" in str(caught.value)
    assert "test_rpc_edge.py" not in str(caught.value)


_LEAK: contextvars.ContextVar[str | None] = contextvars.ContextVar("leak", default=None)


class _ContextUser(gf.FlightServerMethods):
    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Any:
        if action.type == "set":
            _LEAK.set("from an earlier call")
            structlog.contextvars.bind_contextvars(earlier="call")
            return [b"set"]

        def results() -> Iterator[bytes]:
            yield str(_LEAK.get()).encode()
            yield str(structlog.contextvars.get_contextvars().get("earlier")).encode()

        return results()


def test_context_variables_do_not_leak_between_calls() -> None:
    """What one call binds in context variables is never visible to a later call on the same thread."""
    with running_server(_ContextUser()) as server, _client(server) as client:
        seen = set()
        for _ in range(50):
            list(client.do_action(flight.Action("set", b"")))
            seen.update(r.body.to_pybytes() for r in client.do_action(flight.Action("get", b"")))
    assert seen == {b"None"}
