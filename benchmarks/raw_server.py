"""The baseline: a plain ``pyarrow.flight.FlightServerBase`` doing the same work as the framework service.

``python -m benchmarks.raw_server --port N [--auth] [--table-mib M]``; stops on SIGTERM/SIGINT.

With ``--auth`` a pyarrow middleware checks ``authorization: Bearer <token>`` against the enumerated
tokens on every call, as the framework's token authentication does. Tasks run on a plain
``concurrent.futures.ThreadPoolExecutor`` with as many threads as the framework's default
``task_threads``; results wait in a dict until their DoGet picks them up.
"""

from __future__ import annotations

import argparse
import signal
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow
import pyarrow.flight

from benchmarks.common import (
    ACTION_PING,
    BIG_TICKET,
    POOL_TASK_COMMAND,
    SMALL_TABLE,
    TASK_COMMAND,
    big_table,
    small_flight_info,
    token_matches,
)

_BEARER = "Bearer "


class BearerAuthFactory(pyarrow.flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Rejects calls without a known bearer token; the equivalent of the framework's token auth."""

    def start_call(self, info: Any, headers: dict[str, list[Any]]) -> None:
        values = headers.get("authorization")
        if not values or len(values) != 1 or not values[0].startswith(_BEARER):
            raise pyarrow.flight.FlightUnauthenticatedError("authentication required")
        if not token_matches(values[0][len(_BEARER) :].strip()):
            raise pyarrow.flight.FlightUnauthenticatedError("the token is not valid")


def _task_work() -> pyarrow.Table:
    """What a task does in both servers: produce a small table."""
    return SMALL_TABLE


class RawServer(pyarrow.flight.FlightServerBase):  # type: ignore[misc]
    def __init__(self, port: int, auth: bool, table_mib: int) -> None:
        self._big = big_table(table_mib) if table_mib else SMALL_TABLE  # before serving starts
        middleware = {"auth": BearerAuthFactory()} if auth else {}
        super().__init__(f"grpc://127.0.0.1:{port}", middleware=middleware)
        self._location = f"grpc://127.0.0.1:{port}"
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="raw-task")
        self._results: dict[str, pyarrow.Table] = {}
        self._lock = threading.Lock()

    def do_action(self, context: Any, action: pyarrow.flight.Action) -> list[bytes]:
        if action.type == ACTION_PING:
            return [b"pong"]
        raise pyarrow.flight.FlightServerError(f"unknown action {action.type}")

    def get_flight_info(self, context: Any, descriptor: pyarrow.flight.FlightDescriptor) -> Any:
        if descriptor.command in (TASK_COMMAND, POOL_TASK_COMMAND):
            task_id = uuid.uuid4().hex
            table = self._pool.submit(_task_work).result()
            with self._lock:
                self._results[task_id] = table
            return pyarrow.flight.FlightInfo(
                table.schema,
                descriptor,
                [pyarrow.flight.FlightEndpoint(task_id.encode(), [self._location])],
                total_records=-1,
                total_bytes=-1,
            )
        return small_flight_info(descriptor, self._location)

    def do_get(self, context: Any, ticket: pyarrow.flight.Ticket) -> Any:
        if ticket.ticket == BIG_TICKET:
            return pyarrow.flight.RecordBatchStream(self._big)
        with self._lock:
            table = self._results.pop(ticket.ticket.decode(), None)
        if table is None:
            raise pyarrow.flight.FlightServerError("invalid ticket")
        return pyarrow.flight.RecordBatchStream(table)

    def do_put(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> None:
        for _ in reader:  # receive every batch and drop it, as the framework service does
            pass

    def close_pool(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--auth", action="store_true")
    parser.add_argument("--table-mib", type=int, default=0)
    args = parser.parse_args()
    server = RawServer(args.port, args.auth, args.table_mib)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    server.close_pool()


if __name__ == "__main__":
    main()
