"""Long-running tasks through a real server and a real pyarrow Flight client."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, Union

import pyarrow
import pyarrow.flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server.testing import running_server

_WAIT = 20.0  # generous bound for things that must happen; tests finish long before it
_TABLE = pyarrow.table({"col1": [1, 2, 3], "col2": ["a", "b", "c"]})


def _code(error: pyarrow.flight.FlightError) -> int:
    return gf.ErrorInfo.from_pyarrow_error(error).code


# -- the seed README's task example, unchanged but for its two placeholders ---------------------------


def some_method_to_generate_data() -> pyarrow.RecordBatchReader:
    """Placeholder of the README example: data that can be streamed once."""
    return pyarrow.RecordBatchReader.from_batches(_TABLE.schema, _TABLE.to_batches(max_chunksize=1))


class MyServiceTask(gf.Task):
    def __init__(
        self,
        task_specific_payload: Any,
        cmd: bytes,
    ):
        super().__init__(cmd)

        self._task_specific_payload = task_specific_payload

    def run(self) -> Union[gf.TaskResult, gf.TaskError]:  # noqa: UP007  # as the README writes it
        # tasks support cancellation; your code can check for
        # cancellation at any time; if the task was cancelled the
        # method will raise exception.
        #
        # do not forget to do cleanup on cancellation
        self.check_cancelled()

        # ... do whatever is needed to generate the data
        data: pyarrow.RecordBatchReader = some_method_to_generate_data()

        # when the data is ready, wrap it in a result that implements
        # the FlightDataTaskResult interface; there are built-in implementations
        # to wrap Arrow Table or Arrow RecordBatchReader.
        #
        # you can write your own result if you need special handling
        # of result and/or resources bound to the result.
        return gf.FlightDataTaskResult.for_data(data)


class DataServiceMethods(gf.FlightServerMethods):
    def __init__(self, ctx: gf.ServerContext) -> None:
        self._ctx = ctx

    def _prepare_flight_info(self, task_result: gf.TaskExecutionResult) -> pyarrow.flight.FlightInfo:
        if task_result.error is not None:
            raise task_result.error.as_flight_error()

        if task_result.cancelled:
            raise gf.ErrorInfo.for_reason(
                gf.ErrorCode.COMMAND_CANCELLED,
                f"Service call was cancelled. Invocation task was: '{task_result.task_id}'.",
            ).to_server_error()

        result = task_result.result

        return pyarrow.flight.FlightInfo(
            schema=result.get_schema(),
            descriptor=pyarrow.flight.FlightDescriptor.for_command(task_result.cmd),
            endpoints=[
                pyarrow.flight.FlightEndpoint(
                    ticket=pyarrow.flight.Ticket(ticket=task_result.task_id.encode()),
                    locations=[self._ctx.location],
                )
            ],
            total_records=-1,
            total_bytes=-1,
        )

    def get_flight_info(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
    ) -> pyarrow.flight.FlightInfo:
        cmd = descriptor.command
        # parse & validate the command
        some_parsed_command = cmd.decode()

        # create your custom task; you will usually pass the parsed command
        # so that task knows what to do. The 'raw' command is required as well because
        # it should be bounced back in the FlightInfo
        task = MyServiceTask(task_specific_payload=some_parsed_command, cmd=cmd)
        self._ctx.task_executor.submit(task)

        # wait for the task to complete
        result = self._ctx.task_executor.wait_for_result(task_id=task.task_id)

        # once the task completes, create the FlightInfo or raise exception in
        # case the task failed. The ticket in the FlightInfo should contain the
        # task identifier.
        return self._prepare_flight_info(result)

    def do_get(
        self, context: pyarrow.flight.ServerCallContext, ticket: pyarrow.flight.Ticket
    ) -> pyarrow.flight.FlightDataStream:
        # caller comes to pick the data; the ticket should be the task identifier
        task_id = ticket.ticket.decode()

        # this utility method on the base class takes care of everything needed
        # to correctly create FlightDataStream from the task result (or die trying
        # in case the task result is no longer preset, or the result indicates that
        # the task has failed)
        return self.do_get_task_result(context, self._ctx.task_executor, task_id)


def test_readme_task_example_end_to_end() -> None:
    """The README's task example serves GetFlightInfo then DoGet; the reader result is single use."""
    with running_server(DataServiceMethods) as server:
        client = pyarrow.flight.FlightClient(server.location)
        info = client.get_flight_info(pyarrow.flight.FlightDescriptor.for_command(b"my command"))
        assert info.schema == _TABLE.schema
        assert info.descriptor.command == b"my command"
        (endpoint,) = info.endpoints
        assert [loc.uri for loc in endpoint.locations] == [server.location.uri]
        assert client.do_get(endpoint.ticket).read_all() == _TABLE
        with pytest.raises(pyarrow.flight.FlightServerError) as e:
            client.do_get(endpoint.ticket).read_all()
        assert _code(e.value) == gf.ErrorCode.COMMAND_RESULT_CONSUMED
        client.close()


def test_many_concurrent_flows_succeed() -> None:
    """16 threads x 100 GetFlightInfo -> DoGet flows all get their data."""
    failures: list[BaseException] = []
    done = [0]
    lock = threading.Lock()

    def flows(thread_no: int) -> None:
        client = pyarrow.flight.FlightClient(server.location)
        try:
            for i in range(100):
                cmd = f"{thread_no}-{i}".encode()
                info = client.get_flight_info(pyarrow.flight.FlightDescriptor.for_command(cmd))
                assert info.descriptor.command == cmd
                assert client.do_get(info.endpoints[0].ticket).read_all() == _TABLE
                with lock:
                    done[0] += 1
        except BaseException as e:
            failures.append(e)
        finally:
            client.close()

    with running_server(DataServiceMethods, settings={"server": {"task_threads": 8}}) as server:
        threads = [threading.Thread(target=flows, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert failures == []
    assert done[0] == 1600


# -- every do_get_task_result outcome -----------------------------------------------------------------


class _Task(gf.Task):
    """Does what its command says; ``block`` waits until cancelled (or released by the test)."""

    def __init__(self, cmd: bytes, service: _OutcomeService) -> None:
        super().__init__(cmd)
        self._service = service
        self._closed = service.closed[self.task_id] = threading.Event()

    def on_task_cancel(self) -> None:
        self._service.cancelled.append(self.task_id)
        self._service.release.set()

    def run(self) -> gf.TaskResult | gf.TaskError:
        what = self.cmd.decode()
        service = self._service
        if what == "table":
            return gf.FlightDataTaskResult.for_table(_TABLE, on_close=self._closed.set)
        if what == "big-table":
            return gf.FlightDataTaskResult.for_table(_big_table(), on_close=self._closed.set)
        if what == "reader":
            return gf.FlightDataTaskResult.for_reader(
                some_method_to_generate_data(), on_close=self._closed.set
            )
        if what == "endless":
            return gf.FlightDataTaskResult.for_reader(_endless(), on_close=self._closed.set)
        if what == "batches":
            return _BatchesResult()
        if what == "bad-argument":
            raise ValueError("column 'x' does not exist")
        if what == "custom-error":
            raise gf.ErrorInfo(
                msg="quota exceeded", code=gf.ErrorCode.CUSTOM_START + 7
            ).to_unavailable_error()
        if what == "crash":
            raise RuntimeError("internal secret")
        if what == "block":
            service.started.set()
            service.release.wait(_WAIT)
            self.check_cancelled()
            return gf.FlightDataTaskResult.for_table(_TABLE)
        raise AssertionError(what)


def _big_table() -> pyarrow.Table:
    """Far more than gRPC buffers, so the server is still streaming when the client goes away."""
    batch = pyarrow.record_batch({"col1": list(range(10_000))})
    return pyarrow.Table.from_batches([batch] * 500)


def _endless() -> pyarrow.RecordBatchReader:
    batch = pyarrow.record_batch({"col1": list(range(10_000))})

    def batches() -> Iterator[pyarrow.RecordBatch]:
        while True:
            yield batch

    return pyarrow.RecordBatchReader.from_batches(batch.schema, batches())


class _BatchesResult(gf.FlightDataTaskResult):
    """A custom result whose data is a list of record batches, written the original package's way."""

    def __init__(self) -> None:
        super().__init__(single_use_data=False)

    def get_schema(self) -> pyarrow.Schema:
        return _TABLE.schema

    def _get_data(self) -> list[pyarrow.RecordBatch]:
        return _TABLE.to_batches(max_chunksize=1)

    def _close(self) -> None:
        pass


class _OutcomeService(gf.FlightServerMethods):
    """GetFlightInfo submits a task and answers at once with its ticket; DoGet streams the outcome."""

    def __init__(self, ctx: gf.ServerContext) -> None:
        self.ctx = ctx
        self.started = threading.Event()
        self.release = threading.Event()
        self.closed: dict[str, threading.Event] = {}
        self.cancelled: list[str] = []

    def get_flight_info(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.FlightInfo:
        task = _Task(descriptor.command, self)
        self.ctx.task_executor.submit(task)
        return pyarrow.flight.FlightInfo(
            _TABLE.schema,
            descriptor,
            [pyarrow.flight.FlightEndpoint(task.task_id.encode(), [self.ctx.location])],
            -1,
            -1,
        )

    def do_get(
        self, context: pyarrow.flight.ServerCallContext, ticket: pyarrow.flight.Ticket
    ) -> pyarrow.flight.FlightDataStream:
        return self.do_get_task_result(context, self.ctx.task_executor, ticket.ticket.decode())


class _Harness:
    def __init__(self, server: gf.GoodDataFlightServer, service: _OutcomeService) -> None:
        self.server = server
        self.service = service
        self.client = pyarrow.flight.FlightClient(server.location)

    def ticket(self, what: str) -> pyarrow.flight.Ticket:
        info = self.client.get_flight_info(pyarrow.flight.FlightDescriptor.for_command(what.encode()))
        return info.endpoints[0].ticket

    def read(self, ticket: pyarrow.flight.Ticket) -> pyarrow.Table:
        return self.client.do_get(ticket).read_all()

    def closed(self, ticket: pyarrow.flight.Ticket) -> threading.Event:
        """Set when the result of the ticket's task is closed."""
        return self.service.closed[ticket.ticket.decode()]


@contextlib.contextmanager
def _harness(**server_settings: Any) -> Iterator[_Harness]:
    services: list[_OutcomeService] = []

    def factory(ctx: gf.ServerContext) -> gf.FlightServerMethods:
        services.append(_OutcomeService(ctx))
        return services[0]

    with running_server(factory, settings={"server": server_settings}) as server:
        h = _Harness(server, services[0])
        try:
            yield h
        finally:
            h.client.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[_Harness]:
    with _harness() as h:
        yield h


@pytest.fixture
def h(harness: _Harness) -> _Harness:
    """The shared server (results kept the default 60 s) with the service's state reset."""
    service = harness.service
    service.started.clear()
    service.release.clear()
    service.cancelled.clear()
    return harness


def test_table_result_streams_repeatedly(h: _Harness) -> None:
    """A Table result can be read by several DoGets."""
    ticket = h.ticket("table")
    assert h.read(ticket) == _TABLE
    assert h.read(ticket) == _TABLE


def test_reader_result_streams_once(h: _Harness) -> None:
    """A RecordBatchReader result streams once, then COMMAND_RESULT_CONSUMED; it is closed at once."""
    ticket = h.ticket("reader")
    assert h.read(ticket) == _TABLE
    assert h.closed(ticket).wait(_WAIT)
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        h.read(ticket)
    assert _code(e.value) == gf.ErrorCode.COMMAND_RESULT_CONSUMED


def test_iterable_of_batches_streams(h: _Harness) -> None:
    """A custom result handing out a list of batches streams with the result's schema."""
    assert h.read(h.ticket("batches")) == _TABLE


def test_unknown_ticket_is_invalid(h: _Harness) -> None:
    """DoGet with a ticket the executor does not know is INVALID_TICKET."""
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        h.read(pyarrow.flight.Ticket(b"0" * 32))
    assert _code(e.value) == gf.ErrorCode.INVALID_TICKET


def test_expired_ticket_is_invalid_and_result_closed() -> None:
    """After task_result_ttl_sec the result is closed and its ticket is INVALID_TICKET."""
    # long enough for GetFlightInfo's answer and the first DoGet on a slow machine (the TTL counts
    # from the task's end, before GetFlightInfo answers)
    with _harness(task_result_ttl_sec=1.0) as h:
        ticket = h.ticket("table")
        assert h.read(ticket) == _TABLE
        assert h.closed(ticket).wait(_WAIT)
        with pytest.raises(pyarrow.flight.FlightServerError) as e:
            h.read(ticket)
        assert _code(e.value) == gf.ErrorCode.INVALID_TICKET


def test_bad_argument_error(h: _Harness) -> None:
    """A task raising ValueError fails DoGet with BAD_ARGUMENT and the message, no traceback."""
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        h.read(h.ticket("bad-argument"))
    info = gf.ErrorInfo.from_pyarrow_error(e.value)
    assert info.code == gf.ErrorCode.BAD_ARGUMENT
    assert "column 'x' does not exist" in info.msg
    assert info.detail is None


def test_flight_error_of_task_reaches_client_as_is(h: _Harness) -> None:
    """A Flight error raised by a task reaches the client with its type and ErrorInfo."""
    with pytest.raises(pyarrow.flight.FlightUnavailableError) as e:
        h.read(h.ticket("custom-error"))
    assert gf.ErrorInfo.from_pyarrow_error(e.value) == gf.ErrorInfo(
        msg="quota exceeded", code=gf.ErrorCode.CUSTOM_START + 7
    )


def test_crash_is_command_failed_without_traceback(h: _Harness) -> None:
    """A task crashing with any other exception is COMMAND_FAILED; no traceback reaches the client."""
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        h.read(h.ticket("crash"))
    info = gf.ErrorInfo.from_pyarrow_error(e.value)
    assert info.code == gf.ErrorCode.COMMAND_FAILED
    assert info.detail is None
    assert "Traceback" not in str(e.value)


def test_cancelled_task_is_command_cancelled(h: _Harness) -> None:
    """DoGet of a task cancelled while running is COMMAND_CANCELLED."""
    ticket = h.ticket("block")
    assert h.service.started.wait(_WAIT)
    assert h.server.task_executor.cancel(ticket.ticket.decode()) is True
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        h.read(ticket)
    assert _code(e.value) == gf.ErrorCode.COMMAND_CANCELLED
    assert h.service.cancelled == [ticket.ticket.decode()]


def test_client_disconnect_mid_stream_releases_and_closes_reader(h: _Harness) -> None:
    """A client dropping a DoGet of an endless reader mid-stream leaves the result closed, no lock held."""
    ticket = h.ticket("endless")
    client = pyarrow.flight.FlightClient(h.server.location)
    reader = client.do_get(ticket)
    assert reader.read_chunk().data.num_rows == 10_000
    reader.cancel()
    client.close()
    # closed at the end of the call (results are kept 60 s here), and close() runs only once
    # the reader released its lock, so this proves both
    assert h.closed(ticket).wait(_WAIT)
    with pytest.raises(pyarrow.flight.FlightServerError) as e:
        h.read(ticket)
    assert _code(e.value) == gf.ErrorCode.COMMAND_RESULT_CONSUMED


def test_client_disconnect_mid_stream_of_table_releases_lock(h: _Harness) -> None:
    """A Table streamed to a client that went away mid-stream is released: it can be closed."""
    ticket = h.ticket("big-table")
    client = pyarrow.flight.FlightClient(h.server.location)
    reader = client.do_get(ticket)
    reader.read_chunk()
    reader.cancel()
    client.close()
    assert not h.closed(ticket).is_set()  # repeatable data stays until evicted
    assert h.server.task_executor.close_result(ticket.ticket.decode()) is True
    assert h.closed(ticket).wait(_WAIT)  # close() waits for readers: none is left


# -- shutdown -----------------------------------------------------------------------------------------


def test_shutdown_cancels_running_tasks() -> None:
    """Stopping the server with a task running cancels it; the waiting client gets an error and the
    server stops within its drain deadline."""
    services: list[_OutcomeService] = []

    class Waiting(_OutcomeService):
        def get_flight_info(
            self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
        ) -> pyarrow.flight.FlightInfo:
            task = _Task(descriptor.command, self)
            self.ctx.task_executor.submit(task)
            outcome = self.ctx.task_executor.wait_for_result(task.task_id)
            if outcome is None or outcome.cancelled:
                raise gf.ErrorInfo.for_reason(gf.ErrorCode.COMMAND_CANCELLED, "cancelled").to_server_error()
            raise AssertionError("the task should not complete")

    def factory(ctx: gf.ServerContext) -> gf.FlightServerMethods:
        services.append(Waiting(ctx))
        return services[0]

    errors: list[BaseException] = []
    with running_server(factory, settings={"server": {"shutdown_timeout_sec": 1.0}}) as server:
        client = pyarrow.flight.FlightClient(server.location)

        def call() -> None:
            try:
                client.get_flight_info(pyarrow.flight.FlightDescriptor.for_command(b"block"))
            except BaseException as e:
                errors.append(e)

        caller = threading.Thread(target=call)
        caller.start()
        assert services[0].started.wait(_WAIT)
        started = time.monotonic()
        server.stop()
        assert server.wait_for_stop(_WAIT)
        assert time.monotonic() - started < 10.0
        caller.join(_WAIT)
        client.close()
    assert len(services[0].cancelled) == 1
    assert len(errors) == 1 and isinstance(errors[0], pyarrow.flight.FlightError)
