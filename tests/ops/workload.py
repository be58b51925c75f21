"""A small service and a scripted client that drive every path the operations kit watches.

The server runs in a subprocess of its own (the CLI, as in production), so its ``/metrics`` holds
only what this workload did: no counts left over by other tests of the same pytest process.

:func:`run_workload` makes, with a valid token unless said otherwise: GetFlightInfo calls whose task
produces a table and DoGet calls that stream it (rows and bytes sent, task timings); a DoPut
(batches received, rows and bytes the service reports it read); a GetFlightInfo whose task fails (a
task error); a DoAction that raises (INTERNAL); a task held running and another queued behind it
with ``task_threads = 1`` and ``task_queue_size = 1``, so the next GetFlightInfo is refused with
BACKPRESSURE (``queue_full``), then the queued task cancelled; calls without a token, with an
unknown token and with a token that makes the verification strategy itself fail; and a ListFlights
the service does not implement.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf

TOKEN = "ops-token"
STRATEGY_FAILS = "token-that-breaks-the-strategy"
TABLE = pyarrow.table({"n": list(range(500)), "s": [f"row {i}" for i in range(500)]})
QUERIES = 3
"""GetFlightInfo + DoGet round trips with a valid token."""


def settings() -> dict[str, dict[str, Any]]:
    """The server settings the workload needs: token auth through the strategy below, one worker, a
    queue of one, metrics on loopback, and housekeeping often enough to be seen within a test."""
    return {
        "server": {
            "listen_host": "127.0.0.1",
            "listen_port": 0,
            "advertise_host": "127.0.0.1",
            "metrics_host": "127.0.0.1",
            "metrics_port": 0,
            "authentication_method": "token",
            "token_verification": "tests.ops.workload:WorkloadTokens",
            "task_threads": 1,
            "task_queue_size": 1,
            "malloc_trim_interval_sec": 0.2,
        }
    }


class WorkloadTokens(gf.TokenVerificationStrategy):
    """Accepts TOKEN; STRATEGY_FAILS makes it raise (a failure of the strategy); the rest is invalid."""

    def verify(self, call_info: flight.CallInfo, token: str) -> Any:
        if token == TOKEN:
            return {"user": "ops"}
        if token == STRATEGY_FAILS:
            raise RuntimeError("the token service is unreachable")
        raise flight.FlightUnauthenticatedError("unknown token")


class _TableTask(gf.Task):
    def run(self) -> gf.TaskResult | gf.TaskError:
        self.check_cancelled()
        if self.cmd == b"fail":
            raise RuntimeError("the task's data source failed")
        return gf.FlightDataTaskResult.for_data(TABLE)


class _BlockingTask(gf.Task):
    """Runs until the service releases it, so that the next task has to queue."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__(b"block")
        self.started = threading.Event()
        self._release = release

    def run(self) -> gf.TaskResult | gf.TaskError:
        self.started.set()
        self._release.wait(30)
        self.check_cancelled()
        return gf.FlightDataTaskResult.for_data(TABLE)


class WorkloadMethods(gf.FlightServerMethods):
    def __init__(self, ctx: gf.ServerContext) -> None:
        self._ctx = ctx
        self._release = threading.Event()

    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        executor = self._ctx.task_executor
        task = _TableTask(descriptor.command)
        executor.submit(task)  # BACKPRESSURE while the queue is full
        outcome = executor.wait_for_result(task.task_id, timeout=30)
        assert outcome is not None
        if outcome.error is not None:
            raise outcome.error.as_flight_error(for_client=True)
        endpoint = flight.FlightEndpoint(task.task_id.encode(), [self._ctx.location])
        return flight.FlightInfo(TABLE.schema, descriptor, [endpoint], -1, -1)

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.FlightDataStream:
        return self.do_get_task_result(context, self._ctx.task_executor, ticket.ticket.decode())

    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        table = reader.read_all()
        context.get_middleware("call_info").count_received(table.num_rows, table.nbytes)

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[bytes]:
        executor = self._ctx.task_executor
        body = action.body.to_pybytes()
        if action.type == "hold":  # occupy the only worker, and return once the task runs
            self._release = threading.Event()
            task = _BlockingTask(self._release)
            executor.submit(task)
            assert task.started.wait(10), "the blocking task did not start"
        elif action.type == "queue":  # a task that waits behind the held one: the queue is full now
            task = _BlockingTask(self._release)
            executor.submit(task)
            body = task.task_id.encode()
        elif action.type == "cancel":
            executor.cancel(body.decode())
        elif action.type == "release":
            self._release.set()
        elif action.type == "fail":
            raise RuntimeError("an action that fails")
        return iter([orjson.dumps({"type": action.type, "body": body.decode()})])


@gf.flight_server_methods
def workload_service(ctx: gf.ServerContext) -> gf.FlightServerMethods:
    return WorkloadMethods(ctx)


def _options(token: str | None) -> flight.FlightCallOptions:
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    return flight.FlightCallOptions(headers=headers, timeout=30)


def _action(client: flight.FlightClient, name: str, body: bytes = b"") -> dict[str, Any]:
    (result,) = list(client.do_action(flight.Action(name, body), _options(TOKEN)))
    return dict(orjson.loads(result.body.to_pybytes()))


def run_workload(location: str) -> None:
    """Drive the server at ``location`` through every path the kit watches (see the module doc)."""
    ok = _options(TOKEN)
    with flight.FlightClient(location) as client:
        for i in range(QUERIES):
            info = client.get_flight_info(flight.FlightDescriptor.for_command(f"query {i}"), ok)
            assert client.do_get(info.endpoints[0].ticket, ok).read_all().num_rows == TABLE.num_rows

        writer, _ = client.do_put(flight.FlightDescriptor.for_path("upload"), TABLE.schema, ok)
        writer.write_table(TABLE)
        writer.close()

        with pytest.raises(flight.FlightServerError, match="data source failed"):
            client.get_flight_info(flight.FlightDescriptor.for_command("fail"), ok)
        with pytest.raises(flight.FlightInternalError):
            _action(client, "fail")

        _action(client, "hold")
        queued = _action(client, "queue")["body"]
        with pytest.raises(flight.FlightUnavailableError) as refused:
            client.get_flight_info(flight.FlightDescriptor.for_command("refused"), ok)
        assert gf.ErrorInfo.from_pyarrow_error(refused.value).code == gf.ErrorCode.BACKPRESSURE
        _action(client, "cancel", queued.encode())
        _action(client, "release")

        for token, error in (
            (None, flight.FlightUnauthenticatedError),
            ("not-a-token", flight.FlightUnauthenticatedError),
            (STRATEGY_FAILS, flight.FlightInternalError),
        ):
            with pytest.raises(error):
                list(client.list_flights(options=_options(token)))
        with pytest.raises(flight.FlightServerError, match="not implemented"):  # not implemented here
            list(client.list_flights(options=ok))
