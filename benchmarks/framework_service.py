"""The framework side: a data service doing the raw server's work, run through the real CLI.

``gooddata-flight-server start --methods-provider benchmarks.framework_service --config bench.toml``
(from the repository root). ``[bench] table_mib`` sizes the big table, built once in the factory.

Besides the benchmarked calls it answers three actions the harness uses to check that per-call
costs do not grow with the number of stored task results: ``fill`` (body: a count; submit that many
tasks and wait for them, leaving their results stored), ``clear`` (close every stored result) and
``stored`` (how many the executor holds; read from its internals, read-only).
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow
import pyarrow.flight

import gooddata_flight_server as gf
from benchmarks.common import (
    ACTION_PING,
    BIG_TICKET,
    POOL_TASK_COMMAND,
    SMALL_TABLE,
    TASK_COMMAND,
    big_table,
    small_flight_info,
)


class SmallTask(gf.Task):
    """What a task does in both servers: produce a small table."""

    def run(self) -> gf.TaskResult:
        return gf.FlightDataTaskResult.for_data(SMALL_TABLE)


class BenchMethods(gf.FlightServerMethods):
    def __init__(self, ctx: gf.ServerContext) -> None:
        self._ctx = ctx
        self._executor = ctx.task_executor
        self._location = ctx.location.uri.decode()
        mib = int(ctx.settings.get("bench.table_mib", 0) or 0)
        self._big = big_table(mib) if mib else SMALL_TABLE
        # the raw server's way of running tasks, to split the task round trip's cost (see README)
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="bench-pool")
        self._pool_results: dict[str, pyarrow.Table] = {}
        self._pool_lock = threading.Lock()

    def do_action(self, context: Any, action: pyarrow.flight.Action) -> list[bytes]:
        kind = action.type
        if kind == ACTION_PING:
            return [b"pong"]
        if kind == "fill":
            tasks = [SmallTask(TASK_COMMAND) for _ in range(int(action.body.to_pybytes()))]
            for task in tasks:
                self._executor.submit(task)
            for task in tasks:
                self._executor.wait_for_result(task.task_id)
            return [str(self._stored()).encode()]
        if kind == "clear":
            for task_id in list(self._tasks()):
                self._executor.close_result(task_id)
            deadline = time.monotonic() + 60
            while self._close_queue() and time.monotonic() < deadline:  # closing runs in the background
                time.sleep(0.01)
            return [str(self._stored()).encode()]
        if kind == "stored":
            return [str(self._stored()).encode()]
        raise gf.ErrorInfo.bad_argument(f"unknown action {kind}")

    def _tasks(self) -> dict[str, Any]:
        return self._executor._tasks  # type: ignore[attr-defined,no-any-return]  # read-only peek

    def _close_queue(self) -> int:
        return int(self._executor.close_queue_depth)  # type: ignore[attr-defined]

    def _stored(self) -> int:
        return len(self._tasks())

    def get_flight_info(self, context: Any, descriptor: pyarrow.flight.FlightDescriptor) -> Any:
        if descriptor.command == POOL_TASK_COMMAND:
            return self._pool_flight_info(descriptor)
        if descriptor.command != TASK_COMMAND:
            return small_flight_info(descriptor, self._location)
        task = SmallTask(descriptor.command)
        self._executor.submit(task)
        execution = self._executor.wait_for_result(task.task_id)
        if execution is None or execution.result is None:
            raise gf.ErrorInfo.for_reason(gf.ErrorCode.COMMAND_FAILED, "task failed").to_server_error()
        result = execution.result
        assert isinstance(result, gf.FlightDataTaskResult)
        return pyarrow.flight.FlightInfo(
            result.get_schema(),
            descriptor,
            [pyarrow.flight.FlightEndpoint(task.task_id.encode(), [self._location])],
            total_records=-1,
            total_bytes=-1,
        )

    def _pool_flight_info(self, descriptor: pyarrow.flight.FlightDescriptor) -> Any:
        """Exactly what the raw server does for a task: a plain pool, a dict, no task executor."""
        task_id = uuid.uuid4().hex
        table = self._pool.submit(lambda: SMALL_TABLE).result()
        with self._pool_lock:
            self._pool_results[task_id] = table
        return pyarrow.flight.FlightInfo(
            table.schema,
            descriptor,
            [pyarrow.flight.FlightEndpoint(task_id.encode(), [self._location])],
            total_records=-1,
            total_bytes=-1,
        )

    def do_get(self, context: Any, ticket: pyarrow.flight.Ticket) -> Any:
        if ticket.ticket == BIG_TICKET:
            return pyarrow.flight.RecordBatchStream(self._big)
        with self._pool_lock:
            table = self._pool_results.pop(ticket.ticket.decode(), None)
        if table is not None:
            return pyarrow.flight.RecordBatchStream(table)
        return self.do_get_task_result(context, self._executor, ticket.ticket.decode())

    def do_put(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> None:
        for _ in reader:  # receive every batch and drop it, as the raw server does
            pass


@gf.flight_server_methods
def bench_service(ctx: gf.ServerContext) -> gf.FlightServerMethods:
    return BenchMethods(ctx)
