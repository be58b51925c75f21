"""The service the reliability tests run: in-process, or through the CLI as ``tests.reliability.service``.

Calls, by what a client sends:

- DoGet ticket ``rows:<n>``: a table of n rows; ``stream:<batches>``: a generator of 64 KiB batches;
  anything else is a task id whose result is streamed (``do_get_task_result``). Tickets are decoded
  naively on purpose, so that undecodable ones exercise the error boundary.
- GetFlightInfo command: JSON ``{"kind": ..., ...}`` run as a task; see :class:`ScriptedTask`.
- DoAction ``ping``, ``echo`` (body back), ``work`` (sleep body seconds; logs ``work_started``),
  ``state`` (the executor's bookkeeping as JSON, read-only).
- DoPut: reads everything, keeps nothing, answers the byte count as metadata.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow
import pyarrow.flight
import structlog

import gooddata_flight_server as gf

log = structlog.get_logger("reliability")

BATCH_ROWS = 8 * 1024  # one int64 column: 64 KiB per batch
MAX_ROWS = 1_000_000
MAX_BATCHES = 100_000


def count(value: Any, limit: int) -> int:
    """A row or batch count from a client, bounded so that no request can exhaust memory."""
    number = int(value)
    if number > limit:
        raise ValueError(f"at most {limit} asked, got {number}")
    return number


def table(rows: int) -> pyarrow.Table:
    return pyarrow.table({"n": pyarrow.array(range(rows), pyarrow.int64())})


def batches(count: int) -> Iterator[pyarrow.RecordBatch]:
    batch = table(BATCH_ROWS).to_batches()[0]
    for _ in range(count):
        yield batch


def executor_state(executor: gf.TaskExecutor) -> dict[str, int]:
    """The executor's bookkeeping, read-only: stored outcomes, queued and running tasks, closes pending.

    Reads ``ThreadTaskExecutor`` internals (no public API tells how many outcomes are stored); the
    one place to adapt if they change.
    """
    return {
        "stored": len(executor._tasks),  # type: ignore[attr-defined]
        "queued": int(executor._queued),  # type: ignore[attr-defined]
        "running": int(executor._running),  # type: ignore[attr-defined]
        "closing": int(executor.close_queue_depth),  # type: ignore[attr-defined]
    }


class ScriptedTask(gf.Task):
    """Does what its command says.

    ``table`` (rows): a repeatable table; ``reader`` (batches): single-use streamed batches;
    ``raise`` (error: value|runtime|flight): fails; ``hang``: blocks until the service's ``release``
    event is set, ignoring cancellation; ``wait``: blocks until cancelled (checks cancellation).
    Every data result reports its close to the service (``closed`` counter and ``on_close`` hook).
    """

    def __init__(self, cmd: bytes, spec: dict[str, Any], service: ReliabilityMethods) -> None:
        super().__init__(cmd)
        self._spec = spec
        self._service = service

    def run(self) -> gf.TaskResult:
        kind = self._spec.get("kind")
        service = self._service
        if kind == "table":
            rows = count(self._spec.get("rows", 3), MAX_ROWS)
            return gf.FlightDataTaskResult.for_data(table(rows), service.closed)
        if kind == "reader":
            reader = pyarrow.RecordBatchReader.from_batches(
                table(0).schema, batches(count(self._spec.get("batches", 1), MAX_BATCHES))
            )
            return gf.FlightDataTaskResult.for_data(reader, service.closed)
        if kind == "raise":
            error = self._spec.get("error")
            if error == "value":
                raise ValueError("the command asks for a value error")
            if error == "flight":
                raise gf.ErrorInfo.for_reason(1001, "the command asks for a flight error").to_user_error()
            raise RuntimeError("the command asks for a runtime error")
        if kind == "hang":
            service.hanging.set()
            service.release.wait(60)
            return gf.FlightDataTaskResult.for_data(table(1), service.closed)
        if kind == "wait":
            service.hanging.set()
            while True:
                self.check_cancelled()
                time.sleep(0.005)
        raise ValueError(f"unknown task kind {kind!r}")


class ReliabilityMethods(gf.FlightServerMethods):
    def __init__(self, ctx: gf.ServerContext) -> None:
        self._ctx = ctx
        self.executor = ctx.task_executor
        self.release = threading.Event()  # lets hanging tasks finish
        self.hanging = threading.Event()  # a hang/wait task has started
        self._lock = threading.Lock()
        self.closed_count = 0
        self.on_close: Any = None

    def closed(self) -> None:
        """Called once for every data result the executor closes."""
        with self._lock:
            self.closed_count += 1
        hook = self.on_close
        if hook is not None:
            hook()

    def get_flight_info(
        self, context: pyarrow.flight.ServerCallContext, descriptor: pyarrow.flight.FlightDescriptor
    ) -> pyarrow.flight.FlightInfo:
        cmd = descriptor.command
        try:
            spec = orjson.loads(cmd or b"null")
        except orjson.JSONDecodeError as e:
            raise gf.ErrorInfo.bad_argument(f"the command is not JSON: {e}") from None
        if not isinstance(spec, dict):
            raise gf.ErrorInfo.bad_argument("the command must be a JSON object")
        task = ScriptedTask(cmd, spec, self)
        self.executor.submit(task)
        execution = self.executor.wait_for_result(task.task_id)
        if execution is None:
            raise gf.ErrorInfo.for_reason(gf.ErrorCode.INVALID_TICKET, "task vanished").to_server_error()
        if execution.error is not None:
            raise execution.error.as_flight_error()
        if execution.cancelled:
            raise gf.ErrorInfo.for_reason(gf.ErrorCode.COMMAND_CANCELLED, "cancelled").to_server_error()
        result = execution.result
        assert isinstance(result, gf.FlightDataTaskResult)
        return pyarrow.flight.FlightInfo(
            result.get_schema(),
            descriptor,
            [pyarrow.flight.FlightEndpoint(task.task_id.encode(), [self._ctx.location])],
            total_records=-1,
            total_bytes=-1,
        )

    def do_get(
        self, context: pyarrow.flight.ServerCallContext, ticket: pyarrow.flight.Ticket
    ) -> pyarrow.flight.FlightDataStream:
        text = ticket.ticket.decode()  # naive on purpose: undecodable tickets hit the error boundary
        kind, _, arg = text.partition(":")
        try:
            if kind == "rows":
                return pyarrow.flight.RecordBatchStream(table(count(arg, MAX_ROWS)))
            if kind == "stream":
                return pyarrow.flight.GeneratorStream(table(0).schema, batches(count(arg, MAX_BATCHES)))
        except ValueError as e:
            raise gf.ErrorInfo.bad_argument(str(e)) from None
        return self.do_get_task_result(context, self.executor, text)

    def do_action(
        self, context: pyarrow.flight.ServerCallContext, action: pyarrow.flight.Action
    ) -> list[bytes]:
        body = action.body.to_pybytes()
        if action.type == "ping":
            return [b"pong"]
        if action.type == "echo":
            return [body]
        if action.type == "work":
            log.info("work_started")
            time.sleep(float(body or b"1"))
            return [b"work-done"]
        if action.type == "state":
            return [orjson.dumps({**executor_state(self.executor), "closed": self.closed_count})]
        raise gf.ErrorInfo.bad_argument(f"unknown action {action.type!r}")

    def do_put(
        self,
        context: pyarrow.flight.ServerCallContext,
        descriptor: pyarrow.flight.FlightDescriptor,
        reader: pyarrow.flight.MetadataRecordBatchReader,
        writer: pyarrow.flight.FlightMetadataWriter,
    ) -> None:
        received = reader.read_all()
        writer.write(str(received.nbytes).encode())


@gf.flight_server_methods
def reliability_service(ctx: gf.ServerContext) -> gf.FlightServerMethods:
    return ReliabilityMethods(ctx)
