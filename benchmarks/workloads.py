"""The client side of every workload: one measurement against one server, in the harness process.

A measurement is a throughput (GB/s for the big transfers, calls/s for the small calls) and, for the
small calls, the latency of every call measured after a short warm-up.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import pyarrow
import pyarrow.flight

from benchmarks.common import (
    ACTION_PING,
    BIG_TICKET,
    INFO_COMMAND,
    POOL_TASK_COMMAND,
    TASK_COMMAND,
    call_options,
)

_WARMUP_SEC = 0.3


@dataclasses.dataclass(frozen=True)
class Measurement:
    value: float  # GB/s or calls/s
    latencies: tuple[float, ...] = ()  # seconds, one per call measured
    work: float = 0.0  # calls made (warm-up included) or GB moved, to relate server CPU time to
    server_cpu: float = 0.0  # CPU seconds the server process used during the measurement (set later)

    def percentile(self, p: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100.0 * len(ordered)))]


def do_get_big(uri: str, auth: bool) -> Measurement:
    """Stream the server's big table once and drop each batch as it arrives (no client-side copy)."""
    with pyarrow.flight.FlightClient(uri) as client:
        started = time.perf_counter()
        reader = client.do_get(pyarrow.flight.Ticket(BIG_TICKET), call_options(auth))
        received = 0
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                break
            received += chunk.data.nbytes
        elapsed = time.perf_counter() - started
    return Measurement(received / elapsed / 1e9, work=received / 1e9)


def do_put_big(table: pyarrow.Table) -> Callable[[str, bool], Measurement]:
    def run(uri: str, auth: bool) -> Measurement:
        """Upload the big table once; the server receives every batch and drops it."""
        with pyarrow.flight.FlightClient(uri) as client:
            started = time.perf_counter()
            descriptor = pyarrow.flight.FlightDescriptor.for_path("upload")
            writer, _ = client.do_put(descriptor, table.schema, call_options(auth))
            writer.write_table(table)
            writer.close()
            elapsed = time.perf_counter() - started
        return Measurement(table.nbytes / elapsed / 1e9, work=table.nbytes / 1e9)

    return run


Call = Callable[[pyarrow.flight.FlightClient, pyarrow.flight.FlightCallOptions], None]


def _action(client: pyarrow.flight.FlightClient, options: pyarrow.flight.FlightCallOptions) -> None:
    list(client.do_action(pyarrow.flight.Action(ACTION_PING, b""), options))


_INFO = pyarrow.flight.FlightDescriptor.for_command(INFO_COMMAND)
_TASK = pyarrow.flight.FlightDescriptor.for_command(TASK_COMMAND)
_POOL_TASK = pyarrow.flight.FlightDescriptor.for_command(POOL_TASK_COMMAND)


def _info(client: pyarrow.flight.FlightClient, options: pyarrow.flight.FlightCallOptions) -> None:
    client.get_flight_info(_INFO, options)


def _task_round_trip(client: pyarrow.flight.FlightClient, options: pyarrow.flight.FlightCallOptions) -> None:
    info = client.get_flight_info(_TASK, options)
    client.do_get(info.endpoints[0].ticket, options).read_all()


def _pool_task_round_trip(
    client: pyarrow.flight.FlightClient, options: pyarrow.flight.FlightCallOptions
) -> None:
    info = client.get_flight_info(_POOL_TASK, options)
    client.do_get(info.endpoints[0].ticket, options).read_all()


CALLS: dict[str, Call] = {
    "action": _action,
    "info": _info,
    "task": _task_round_trip,
    "pooltask": _pool_task_round_trip,  # diagnostic: the framework's RPC edge without its executor
}


def small_calls(call: Call, threads: int, seconds: float) -> Callable[[str, bool], Measurement]:
    def run(uri: str, auth: bool) -> Measurement:
        """``threads`` threads, each with its own client, call back to back for ``seconds``."""
        options = call_options(auth, timeout=30.0)
        clients = [pyarrow.flight.FlightClient(uri) for _ in range(threads)]
        latencies: list[list[float]] = [[] for _ in range(threads)]
        warmup_calls = [0] * threads
        barrier = threading.Barrier(threads + 1)
        window: dict[str, float] = {}
        errors: list[BaseException] = []

        def loop(index: int) -> None:
            client, own = clients[index], latencies[index]
            clock = time.perf_counter
            try:
                barrier.wait()
                warm_until = window["start"]
                while clock() < warm_until:
                    call(client, options)
                    warmup_calls[index] += 1
                end = window["end"]
                while (t0 := clock()) < end:
                    call(client, options)
                    own.append(clock() - t0)
            except BaseException as e:
                errors.append(e)

        workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        now = time.perf_counter()
        window["start"] = now + _WARMUP_SEC
        window["end"] = now + _WARMUP_SEC + seconds
        barrier.wait()
        for worker in workers:
            worker.join()
        finished = time.perf_counter()
        for client in clients:
            client.close()
        if errors:
            raise RuntimeError(f"{len(errors)} calls failed, first: {errors[0]!r}") from errors[0]
        merged = tuple(t for own in latencies for t in own)
        return Measurement(
            len(merged) / (finished - window["start"]), merged, work=len(merged) + sum(warmup_calls)
        )

    return run
