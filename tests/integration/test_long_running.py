"""Long-running queries the standard way, through real servers and pyarrow's FlightClient: the
CancelFlightInfo and RenewFlightEndpoint actions, endpoint expiration, cancelling the work of a
caller that goes away, the server's call deadline, and polling (FlexConnect's protocol)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server import client as gfc
from gooddata_flight_server.flight_protocol import CancelStatus, expiration_of
from gooddata_flight_server.testing import running_server
from tests.compat.test_flexconnect import follow_polls, poll_error, wire_poll
from tests.waiting import wait_until

TABLE = pyarrow.table({"value": [42]})
POLLING = flight.FlightCallOptions(headers=[(b"x-quiver-pollable", b"true")])


class Gated(gf.Task):
    """Runs until its gate opens (then answers TABLE) or it is cancelled; tells when it started."""

    def __init__(self, cmd: bytes, cancellable: bool = True) -> None:
        super().__init__(cmd, cancellable=cancellable)
        self.started = threading.Event()
        self.release = threading.Event()
        self.stopped_by_cancel = threading.Event()

    def run(self) -> gf.FlightDataTaskResult:
        self.started.set()
        while not self.release.wait(0.01):
            if self.cancelled:
                self.stopped_by_cancel.set()
                raise RuntimeError("cancelled")  # the executor records it as cancelled
        return gf.FlightDataTaskResult.for_data(TABLE)


class Service(gf.FlightServerMethods):
    """GetFlightInfo with ``task_flight_info``: ``gated`` tasks wait for the test, others finish at
    once; DoGet streams task results; DoAction ``echo`` is the service's own action."""

    def __init__(self, ctx: gf.ServerContext) -> None:
        self.ctx = ctx
        self.tasks: dict[bytes, Gated] = {}
        self.created = threading.Condition()

    def _create(self, descriptor: flight.FlightDescriptor) -> gf.Task:
        command = descriptor.command
        task = Gated(command, cancellable=command != b"stubborn")
        if command.startswith(b"quick"):
            task.release.set()
        with self.created:
            self.tasks[command] = task
            self.created.notify_all()
        return task

    def task(self, command: bytes) -> Gated:
        with self.created:
            assert self.created.wait_for(lambda: command in self.tasks, timeout=10)
            return self.tasks[command]

    def get_flight_info(self, context: Any, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        return self.task_flight_info(context, self.ctx, descriptor, self._create)

    def do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        return self.do_get_task_result(context, self.ctx.task_executor, ticket.ticket.decode())

    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return [("echo", "answers its body")]

    def do_action(self, context: Any, action: flight.Action) -> Iterator[bytes]:
        if action.type != "echo":
            raise NotImplementedError(f"the action {action.type}")
        yield action.body.to_pybytes()


@pytest.fixture
def served() -> Iterator[tuple[gf.GoodDataFlightServer, Service]]:
    holder: list[Service] = []

    def factory(ctx: gf.ServerContext) -> Service:
        holder.append(Service(ctx))
        return holder[0]

    settings = {"server": {"task_threads": 2, "task_result_ttl_sec": 30, "task_poll_interval_sec": 0.2}}
    with running_server(factory, settings) as server:
        try:
            yield server, holder[0]
        finally:
            for task in holder[0].tasks.values():
                task.release.set()


def _in_background(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as e:
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _info_for(task_id: str, location: flight.Location) -> flight.FlightInfo:
    endpoint = flight.FlightEndpoint(task_id.encode(), [location])
    return flight.FlightInfo(TABLE.schema, flight.FlightDescriptor.for_command(b"x"), [endpoint], -1, -1)


def _code(e: pytest.ExceptionInfo[flight.FlightError]) -> int:
    return gf.ErrorInfo.from_pyarrow_error(e.value).code


# -- the FlightInfo of a task result --------------------------------------------------------------


def test_task_flight_info_expires_when_the_result_is_evicted_and_do_get_can_be_retried(served: Any) -> None:
    """The endpoint names the task, at the server's location, expiring one TTL after the task ended;
    a client that lost its stream reads the result again."""
    server, _ = served
    with flight.FlightClient(server.location) as client:
        before = time.time()
        info = client.get_flight_info(flight.FlightDescriptor.for_command(b"quick"))
        after = time.time()
        (endpoint,) = info.endpoints
        assert endpoint.locations == [server.location]
        expires = expiration_of(endpoint)
        assert expires is not None
        assert before + 30 - 1 <= expires.timestamp() <= after + 30 + 1
        assert info.descriptor.command == b"quick" and info.schema == TABLE.schema
        assert client.do_get(endpoint.ticket).read_all() == TABLE
        assert client.do_get(endpoint.ticket).read_all() == TABLE  # a retried DoGet


# -- RenewFlightEndpoint --------------------------------------------------------------------------


def test_renew_keeps_a_result_past_its_first_expiry() -> None:
    """With a 2 s TTL: a result that is not renewed is evicted, one renewed a second before its
    expiry stays readable past its first expiration_time, and the answer carries the new one."""
    holder: list[Service] = []

    def factory(ctx: gf.ServerContext) -> Service:
        holder.append(Service(ctx))
        return holder[0]

    with running_server(factory, {"server": {"task_result_ttl_sec": 4.0}}) as server:
        with flight.FlightClient(server.location) as client:
            kept = client.get_flight_info(flight.FlightDescriptor.for_command(b"quick")).endpoints[0]
            control = client.get_flight_info(flight.FlightDescriptor.for_command(b"quick-control")).endpoints[
                0
            ]
            first = expiration_of(kept)
            assert first is not None
            # renewed 2 s before its first expiry: it then lives 2 s past it, time enough (on a slow
            # machine too) to see the control result go and still read the renewed one
            time.sleep(max(0.0, first.timestamp() - 2.0 - time.time()))  # what is measured is time itself
            renewed = gfc.renew_flight_endpoint(client, kept)
            second = expiration_of(renewed)
            assert second is not None and second.timestamp() > first.timestamp() + 0.5
            assert renewed.ticket == kept.ticket and renewed.locations == kept.locations

            # the control result goes at its expiry; then the renewed one is past its first one
            def control_evicted() -> bool:
                try:
                    client.do_get(control.ticket).read_all()
                except flight.FlightServerError as e:
                    assert gf.ErrorInfo.from_pyarrow_error(e).code == gf.ErrorCode.INVALID_TICKET
                    return True
                return False

            wait_until(control_evicted, 20, "the control result evicted")
            assert time.time() > first.timestamp()
            assert client.do_get(renewed.ticket).read_all() == TABLE


def test_renew_of_an_unknown_result_is_invalid_ticket(served: Any) -> None:
    server, _ = served
    with flight.FlightClient(server.location) as client:
        with pytest.raises(flight.FlightServerError) as caught:
            gfc.renew_flight_endpoint(client, flight.FlightEndpoint(b"no-such-task", []))
        assert _code(caught) == gf.ErrorCode.INVALID_TICKET


# -- CancelFlightInfo -----------------------------------------------------------------------------


def test_cancel_a_running_task_stops_it(served: Any) -> None:
    """A client waiting in GetFlightInfo; another cancels the task by its FlightInfo: the task
    stops, the waiting call answers COMMAND_CANCELLED."""
    server, service = served
    with flight.FlightClient(server.location) as client:
        waiting, outcome = _in_background(
            lambda: client.get_flight_info(flight.FlightDescriptor.for_command(b"g1"))
        )
        task = service.task(b"g1")
        assert task.started.wait(10)
        status = gfc.cancel_flight_info(client, _info_for(task.task_id, server.location))
        assert status in (CancelStatus.CANCELLED, CancelStatus.CANCELLING)
        assert task.stopped_by_cancel.wait(10)
        waiting.join(10)
    (error,) = outcome
    assert isinstance(error, flight.FlightServerError)
    assert gf.ErrorInfo.from_pyarrow_error(error).code == gf.ErrorCode.COMMAND_CANCELLED


def test_cancel_a_queued_task_and_a_stored_result(served: Any) -> None:
    """With both workers busy a third task waits in the queue: cancelling it answers CANCELLED at
    once. Cancelling a finished task drops its stored result."""
    server, service = served
    executor = server.task_executor
    with flight.FlightClient(server.location) as client:
        stored = client.get_flight_info(flight.FlightDescriptor.for_command(b"quick"))
        for command in (b"busy1", b"busy2"):
            _in_background(lambda c=command: client.get_flight_info(flight.FlightDescriptor.for_command(c)))
            assert service.task(command).started.wait(10)
        _in_background(lambda: client.get_flight_info(flight.FlightDescriptor.for_command(b"queued")))
        queued = service.task(b"queued")  # created: submitted a moment later
        assert wait_until(lambda: executor.get_task_submitted_timestamp(queued.task_id) is not None)
        assert (
            gfc.cancel_flight_info(client, _info_for(queued.task_id, server.location))
            is CancelStatus.CANCELLED
        )
        assert not queued.started.is_set()
        assert gfc.cancel_flight_info(client, stored) is CancelStatus.CANCELLED
        assert executor.wait_for_result(stored.endpoints[0].ticket.ticket.decode()) is None
        with pytest.raises(flight.FlightServerError) as caught:
            client.do_get(stored.endpoints[0].ticket).read_all()
        assert _code(caught) == gf.ErrorCode.INVALID_TICKET


def test_a_task_that_refuses_is_not_cancellable(served: Any) -> None:
    server, service = served
    with flight.FlightClient(server.location) as client:
        _in_background(lambda: client.get_flight_info(flight.FlightDescriptor.for_command(b"stubborn")))
        task = service.task(b"stubborn")
        assert task.started.wait(10)
        info = _info_for(task.task_id, server.location)
        assert gfc.cancel_flight_info(client, info) is CancelStatus.NOT_CANCELLABLE
        task.release.set()


def test_cancel_of_unknown_tickets_is_invalid_ticket_and_other_actions_reach_the_service(served: Any) -> None:
    server, _ = served
    with flight.FlightClient(server.location) as client:
        with pytest.raises(flight.FlightServerError) as caught:
            gfc.cancel_flight_info(client, _info_for("no-such-task", server.location))
        assert _code(caught) == gf.ErrorCode.INVALID_TICKET
        assert [r.body.to_pybytes() for r in client.do_action(flight.Action("echo", b"hi"))] == [b"hi"]
        assert [a.type for a in client.list_actions()] == ["echo", "CancelFlightInfo", "RenewFlightEndpoint"]
        with pytest.raises(flight.FlightServerError) as bad:
            list(client.do_action(flight.Action("CancelFlightInfo", b"\x0a\x05ab")))
        assert _code(bad) == gf.ErrorCode.BAD_ARGUMENT


# -- the caller goes away, the deadline passes -----------------------------------------------------


def test_a_client_that_gives_up_gets_its_task_cancelled(served: Any) -> None:
    """The client's own gRPC deadline passes while GetFlightInfo waits: the server cancels the task."""
    server, service = served
    with flight.FlightClient(server.location) as client:
        client.list_actions()  # a warm channel: the call reaches the server well before its deadline
        with pytest.raises(flight.FlightTimedOutError):
            client.get_flight_info(
                flight.FlightDescriptor.for_command(b"slow"), flight.FlightCallOptions(timeout=0.5)
            )
    assert service.task(b"slow").stopped_by_cancel.wait(10)


def test_the_server_call_deadline_cancels_the_task_and_answers_timeout() -> None:
    holder: list[Service] = []

    def factory(ctx: gf.ServerContext) -> Service:
        holder.append(Service(ctx))
        return holder[0]

    with running_server(factory, {"server": {"call_deadline_sec": 0.3}}) as server:
        with flight.FlightClient(server.location) as client:
            with pytest.raises(flight.FlightTimedOutError) as caught:
                client.get_flight_info(flight.FlightDescriptor.for_command(b"slow"))
        assert _code(caught) == gf.ErrorCode.TIMEOUT
        assert holder[0].task(b"slow").stopped_by_cancel.wait(10)


# -- polling ----------------------------------------------------------------------------------------


def test_polling_speaks_flexconnects_protocol(served: Any) -> None:
    """The same wire answers as FlexConnect's (tests/compat checks those against FlexConnect itself):
    POLL with retry and cancel descriptors while the task runs, the FlightInfo once it is done."""
    server, service = served
    descriptor = flight.FlightDescriptor.for_command(b"polled")
    with flight.FlightClient(server.location) as client:
        with pytest.raises(flight.FlightTimedOutError) as first:
            client.get_flight_info(descriptor, POLLING)
        retry = poll_error(first)
        task = service.task(b"polled")
        assert wire_poll(first.value) == (
            0x1_0000 | 101,
            {"retry_descriptor": retry.retry_descriptor, "cancel_descriptor": retry.cancel_descriptor},
        )
        assert retry.retry_descriptor is not None and retry.cancel_descriptor is not None
        assert retry.retry_descriptor.command == b"r:" + task.task_id.encode()
        assert retry.cancel_descriptor.command == b"c:" + task.task_id.encode()
        with pytest.raises(flight.FlightTimedOutError) as again:
            client.get_flight_info(retry.retry_descriptor, POLLING)
        assert poll_error(again).retry_descriptor == retry.retry_descriptor
        task.release.set()
        info = follow_polls(client, retry.retry_descriptor)
        assert info.descriptor.command == b"polled"
        assert client.do_get(info.endpoints[0].ticket).read_all() == TABLE


def test_polling_cancel_descriptor_and_unknown_retry(served: Any) -> None:
    server, service = served
    with flight.FlightClient(server.location) as client:
        with pytest.raises(flight.FlightTimedOutError) as first:
            client.get_flight_info(flight.FlightDescriptor.for_command(b"to-cancel"), POLLING)
        retry = poll_error(first)
        with pytest.raises(flight.FlightCancelledError) as cancelled:
            client.get_flight_info(retry.cancel_descriptor, POLLING)
        assert _code(cancelled) == gf.ErrorCode.COMMAND_CANCELLED
        assert service.task(b"to-cancel").stopped_by_cancel.wait(10)
        with pytest.raises(flight.FlightServerError) as unknown:
            client.get_flight_info(flight.FlightDescriptor.for_command(b"r:no-such-task"), POLLING)
        assert _code(unknown) == gf.ErrorCode.BAD_ARGUMENT


def test_client_get_flight_info_polls_until_done_and_cancels_on_timeout(served: Any) -> None:
    """The client module follows the polls; past its timeout it cancels the task on the server."""
    server, service = served
    with flight.FlightClient(server.location) as client:
        waiting, outcome = _in_background(
            lambda: gfc.get_flight_info(client, flight.FlightDescriptor.for_command(b"polled-2"), timeout=60)
        )
        task = service.task(b"polled-2")
        assert task.started.wait(10)
        task.release.set()
        waiting.join(30)
        (info,) = outcome
        assert isinstance(info, flight.FlightInfo)
        assert client.do_get(info.endpoints[0].ticket).read_all() == TABLE
        with pytest.raises(TimeoutError, match="cancelled on the server"):
            gfc.get_flight_info(client, flight.FlightDescriptor.for_command(b"never"), timeout=0.5)
        assert service.task(b"never").stopped_by_cancel.wait(10)


# -- review findings: abandoned first polls, single-use results, services answering themselves -----


def test_a_first_poll_given_up_cancels_the_task_it_submitted() -> None:
    """The client never learnt the task's id: nobody could fetch or cancel it, so it goes."""
    holder: list[Service] = []

    def factory(ctx: gf.ServerContext) -> Service:
        holder.append(Service(ctx))
        return holder[0]

    # the first poll would answer after 30 s; the client gives up after 1 s, on a warm channel (so
    # that the call surely reaches the server before its deadline, however slow the machine)
    options = flight.FlightCallOptions(headers=[(b"x-quiver-pollable", b"1")], timeout=1.0)
    with running_server(factory, {"server": {"task_poll_interval_sec": 30}}) as server:
        with flight.FlightClient(server.location) as client:
            client.list_actions()
            with pytest.raises(flight.FlightTimedOutError):
                client.get_flight_info(flight.FlightDescriptor.for_command(b"abandoned"), options)
        assert holder[0].task(b"abandoned").stopped_by_cancel.wait(10)


def test_do_get_of_a_running_task_waits_for_its_result(served: Any) -> None:
    """A ticket handed out by a POLL can be read before the task ended: DoGet waits for it."""
    server, service = served
    with flight.FlightClient(server.location) as client:
        with pytest.raises(flight.FlightTimedOutError) as first:
            client.get_flight_info(flight.FlightDescriptor.for_command(b"early"), POLLING)
        task_id = poll_error(first).retry_descriptor.command.removeprefix(b"r:")
        reading, outcome = _in_background(lambda: client.do_get(flight.Ticket(task_id)).read_all())
        assert service.task(b"early").started.wait(10)
        service.task(b"early").release.set()
        reading.join(30)
    assert outcome == [TABLE]


class _SingleUse(gf.Task):
    def run(self) -> gf.FlightDataTaskResult:
        return gf.FlightDataTaskResult.for_reader(
            pyarrow.RecordBatchReader.from_batches(TABLE.schema, TABLE.to_batches())
        )


class _SingleUseService(Service):
    def _create(self, descriptor: flight.FlightDescriptor) -> gf.Task:
        return _SingleUse(descriptor.command)

    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return [("RenewFlightEndpoint", "this service renews nothing, and says so itself")]

    def do_action(self, context: Any, action: flight.Action) -> Iterator[bytes]:
        yield b"answered by the service"


def test_single_use_results_have_no_expiration_and_a_service_may_answer_a_standard_action() -> None:
    """A result readable once has no expiration_time (a retried DoGet could not read it); a service
    that lists a standard action gets it in its own do_action."""
    with running_server(_SingleUseService) as server, flight.FlightClient(server.location) as client:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(b"once"))
        (endpoint,) = info.endpoints
        assert expiration_of(endpoint) is None
        results = list(client.do_action(flight.Action("RenewFlightEndpoint", b"")))
        assert [r.body.to_pybytes() for r in results] == [b"answered by the service"]
        assert client.do_get(endpoint.ticket).read_all() == TABLE
        with pytest.raises(flight.FlightServerError) as consumed:  # read once, as it said
            client.do_get(endpoint.ticket).read_all()
        assert _code(consumed) in (gf.ErrorCode.COMMAND_RESULT_CONSUMED, gf.ErrorCode.INVALID_TICKET)
        assert server.in_flight_calls == 0
