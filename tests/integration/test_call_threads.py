"""Where a call starts and ends, through a real server: what the thread-state hold relies on.

The edge takes a hold on the thread that starts a call and releases it when the call ends, which is
only safe on that same thread (``rpc._threadstate``). These tests check, for every kind of call and
with the hold on and off, that pyarrow ends each call on the thread that ran its handler, also when
the client goes away mid-stream, and that no hold is left stranded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server.rpc import _threadstate
from gooddata_flight_server.testing import running_server

_BATCH = pyarrow.record_batch({"n": list(range(1000))})


class _Threads(gf.FlightServerMethods):
    """Records, per call, the thread its handler ran on and the thread its end ran on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self.ended = threading.Condition(self.lock)

    def _track(self, context: flight.ServerCallContext, kind: str) -> None:
        record = {"kind": kind, "handler": threading.get_native_id()}
        with self.lock:
            self.calls.append(record)

        def ended(_: BaseException | None) -> None:
            with self.lock:
                record["end"] = threading.get_native_id()
                self.ended.notify_all()

        self.call_finalizer_middleware(context).register_on_end(ended)

    def wait_all_ended(self, count: int) -> list[dict[str, Any]]:
        with self.lock:
            assert self.ended.wait_for(
                lambda: len(self.calls) >= count and all("end" in c for c in self.calls), timeout=30
            ), self.calls
            return list(self.calls)

    def get_flight_info(self, context: Any, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        self._track(context, "GetFlightInfo")
        return flight.FlightInfo(_BATCH.schema, descriptor, [], -1, -1)

    def do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        self._track(context, "DoGet")

        def batches() -> Iterator[pyarrow.RecordBatch]:
            for _ in range(int(ticket.ticket)):
                yield _BATCH

        return flight.GeneratorStream(_BATCH.schema, batches())

    def do_put(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> None:
        self._track(context, "DoPut")
        reader.read_all()

    def do_exchange(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> None:
        self._track(context, "DoExchange")
        writer.begin(_BATCH.schema)
        for chunk in reader:
            writer.write_batch(chunk.data)

    def do_action(self, context: Any, action: flight.Action) -> Iterator[bytes]:
        self._track(context, "DoAction")
        yield from (b"x" for _ in range(int(action.body.to_pybytes())))


@pytest.mark.parametrize("hold", [True, False], ids=["hold", "no_hold"])
def test_every_call_ends_on_the_thread_that_ran_its_handler(hold: bool) -> None:
    methods = _Threads()
    stranded = _threadstate.stranded()
    with running_server(methods, {"server": {"hold_thread_state": hold}}) as server:
        with flight.FlightClient(server.location) as client:
            for _ in range(3):
                client.get_flight_info(flight.FlightDescriptor.for_command(b"x"))
                assert client.do_get(flight.Ticket(b"5")).read_all().num_rows == 5000
                writer, _ = client.do_put(flight.FlightDescriptor.for_command(b"x"), _BATCH.schema)
                writer.write_batch(_BATCH)
                writer.close()
                writer, reader = client.do_exchange(flight.FlightDescriptor.for_command(b"x"))
                writer.begin(_BATCH.schema)
                writer.write_batch(_BATCH)
                writer.done_writing()
                assert reader.read_all().num_rows == 1000
                writer.close()
                assert len(list(client.do_action(flight.Action("n", b"3")))) == 3
            # a client that goes away mid-stream: the call ends when the server notices
            reader = client.do_get(flight.Ticket(b"100000"))
            reader.read_chunk()
            reader.cancel()
        calls = methods.wait_all_ended(16)
    assert {c["kind"] for c in calls} == {"GetFlightInfo", "DoGet", "DoPut", "DoExchange", "DoAction"}
    assert [c for c in calls if c["handler"] != c["end"]] == []
    assert _threadstate.stranded() == stranded


class _FailingTracer:
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the application's tracer is broken")


class _FailingProvider:
    def get_tracer(self, *args: Any, **kwargs: Any) -> _FailingTracer:
        return _FailingTracer()


def test_a_call_refused_after_admission_leaves_the_gate() -> None:
    """A tracer provider that fails while the edge opens a call: the call fails, and the in-flight
    count the drain waits on goes back to 0 (else every stop would wait out its deadline)."""
    with running_server(_Threads(), tracer_provider=_FailingProvider()) as server:  # type: ignore[arg-type]
        with flight.FlightClient(server.location) as client, pytest.raises(flight.FlightError):
            client.get_flight_info(flight.FlightDescriptor.for_command(b"x"))
        assert server.in_flight_calls == 0
    assert server.stopped_cleanly
