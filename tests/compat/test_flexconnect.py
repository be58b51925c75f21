"""GoodData FlexConnect 1.78, unchanged, served by this package's CLI from an isolated venv.

Every test talks to a real ``gooddata-flight-server start --methods-provider gooddata_flexconnect``
process with pyarrow's FlightClient, the way GoodData Cloud does: plain GetFlightInfo + DoGet, the
polling extension (header ``x-quiver-pollable``, POLL errors carrying retry and cancel descriptors),
call deadlines, cancellation and structured errors.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import threading
import time
from collections.abc import Callable

import orjson
import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server import client as gfc
from gooddata_flight_server.flight_protocol import CancelStatus
from tests.compat.conftest import POLLING, FlexConnectServer, error_info, invocation, token
from tests.compat.environment import CompatEnvironment

FAST_SCHEMA = pyarrow.schema([("id", pyarrow.int64()), ("name", pyarrow.string()), ("tag", pyarrow.string())])
STREAMING_SCHEMA = pyarrow.schema([("n", pyarrow.int64())])
GATED_SCHEMA = pyarrow.schema([("value", pyarrow.int64())])
FAILING_SCHEMA = pyarrow.schema([("x", pyarrow.int64())])
CALL_DEADLINE_MS = 1000


@pytest.fixture(scope="module")
def server(start_flexconnect: Callable[..., FlexConnectServer]) -> FlexConnectServer:
    """A FlexConnect server with a long call deadline and a short polling interval."""
    return start_flexconnect(call_deadline_ms=60_000, polling_interval_ms=100)


@pytest.fixture(scope="module")
def short_deadline_server(start_flexconnect: Callable[..., FlexConnectServer]) -> FlexConnectServer:
    """A FlexConnect server whose calls may take CALL_DEADLINE_MS at most, set (as deployments often
    do) through the environment, where it overrides the config file."""
    environ = {"GOODDATA_FLIGHT_FLEXCONNECT__CALL_DEADLINE_MS": str(CALL_DEADLINE_MS)}
    return start_flexconnect(environ, call_deadline_ms=60_000, polling_interval_ms=100)


def poll_error(e: pytest.ExceptionInfo[flight.FlightTimedOutError]) -> gf.RetryInfo:
    """The RetryInfo of a POLL answer; fails the test for any other error."""
    info = error_info(e)
    assert info.code == gf.ErrorCode.POLL, info
    assert info.body is not None
    return gf.RetryInfo.from_bytes(info.body)


def wire_poll(e: flight.FlightError) -> tuple[int, dict[str, flight.FlightDescriptor | None]]:
    """A POLL answer decoded by hand, as clients of the original server read it: ErrorInfo JSON in
    ``extra_info``, its ``body`` the base64 of a RetryInfo JSON whose fields are base64 Flight
    protobuf serialisations."""
    error = orjson.loads(e.extra_info)
    retry = orjson.loads(base64.b64decode(error["body"]))
    descriptors = {
        key: None if retry[key] is None else flight.FlightDescriptor.deserialize(base64.b64decode(retry[key]))
        for key in ("retry_descriptor", "cancel_descriptor")
    }
    assert retry["flight_info"] is None
    return error["code"], descriptors


def follow_polls(
    client: flight.FlightClient,
    descriptor: flight.FlightDescriptor,
    polls: list[gf.RetryInfo] | None = None,
    timeout: float = 15.0,
) -> flight.FlightInfo:
    """GetFlightInfo with polling, retrying while the answer is POLL (the server waits one polling
    interval per call, so this needs no sleep); returns the FlightInfo or raises the final error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return client.get_flight_info(descriptor, POLLING)
        except flight.FlightTimedOutError as e:
            info = gf.ErrorInfo.maybe_from_pyarrow_error(e)
            if info is None or info.code != gf.ErrorCode.POLL or info.body is None:
                raise
            retry = gf.RetryInfo.from_bytes(info.body)
            if polls is not None:
                polls.append(retry)
            assert retry.retry_descriptor is not None
            descriptor = retry.retry_descriptor
    raise AssertionError(f"still polling after {timeout} s")


def read(info: flight.FlightInfo) -> pyarrow.Table:
    """DoGet of the first endpoint at the location it names, as a client of a cluster does."""
    (endpoint,) = info.endpoints
    (location,) = endpoint.locations
    with flight.FlightClient(location) as client:
        return client.do_get(endpoint.ticket).read_all()


def test_environment_runs_this_package(compat_environment: CompatEnvironment) -> None:
    """The compat venv's CLI is this package's, next to FlexConnect 1.78 (the fixture checked the files)."""
    assert compat_environment.flexconnect_version.startswith("1.78.")
    result = subprocess.run(
        [str(compat_environment.cli), "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"gooddata-flight-server {gf.__version__}"


def test_list_flights_shows_the_functions_with_their_schemas(server: FlexConnectServer) -> None:
    """ListFlights lists every function of the module with its schema, name and metadata."""
    with server.client() as client:
        flights = list(client.list_flights())
    by_name = {orjson.loads(f.descriptor.command)["functionName"]: f for f in flights}
    assert set(by_name) == {"compat_fast", "compat_streaming", "compat_gated", "compat_failing"}
    assert by_name["compat_fast"].schema == FAST_SCHEMA
    assert by_name["compat_streaming"].schema == STREAMING_SCHEMA
    assert by_name["compat_gated"].schema == GATED_SCHEMA
    assert by_name["compat_failing"].schema == FAILING_SCHEMA
    assert orjson.loads(by_name["compat_fast"].descriptor.command)["metadata"] == {
        "description": "a small table",
        "compat": True,
    }


def test_get_flight_info_and_do_get_without_polling(server: FlexConnectServer) -> None:
    """Plain GetFlightInfo runs the function and DoGet at the endpoint's location streams its data;
    parameters, the columns hint and the call's headers reach the function."""
    descriptor = invocation("compat_fast", rows=4, columns=["id", "tag"])
    options = flight.FlightCallOptions(headers=[(b"x-compat-tag", b"hello")])
    with server.client() as client:
        info = client.get_flight_info(descriptor, options)
    assert info.schema == pyarrow.schema([FAST_SCHEMA.field("id"), FAST_SCHEMA.field("tag")])
    assert info.descriptor.command == descriptor.command
    assert info.endpoints[0].locations[0].uri.decode() == server.location
    table = read(info)
    assert table.to_pydict() == {"id": [0, 1, 2, 3], "tag": ["hello"] * 4}


def test_streamed_result_keeps_data_source_messages(server: FlexConnectServer) -> None:
    """A RecordBatchReader result streams in full, and the data source messages FlexConnect puts in
    its schema metadata reach the client in the FlightInfo and in the DoGet stream."""
    call = token()
    with server.client() as client:
        info = client.get_flight_info(invocation("compat_streaming", token=call, batches=3))
    (message,) = orjson.loads(info.schema.metadata[b"x-gdc-data-source-messages"])
    assert message == {"source": "compat", "correlation_id": call, "type": "info", "data": None}
    table = read(info)
    assert table.column("n").to_pylist() == [0, 0, 1, 1, 2, 2]
    assert table.schema.metadata == info.schema.metadata


def test_polling_flow_returns_the_result_once_ready(server: FlexConnectServer) -> None:
    """With the polling header a slow call answers POLL with retry and cancel descriptors; retrying
    keeps answering POLL until the function finishes, then returns the FlightInfo; DoGet reads it."""
    call = token()
    descriptor = invocation("compat_gated", token=call)
    with server.client() as client:
        with pytest.raises(flight.FlightTimedOutError) as first:
            client.get_flight_info(descriptor, POLLING)
        retry = poll_error(first)
        assert wire_poll(first.value) == (
            0x1_0000 | 101,  # POLL: code 101, retry on this node
            {"retry_descriptor": retry.retry_descriptor, "cancel_descriptor": retry.cancel_descriptor},
        )
        assert retry.flight_info is None
        assert retry.retry_descriptor is not None and retry.cancel_descriptor is not None
        task_id = retry.retry_descriptor.command.removeprefix(b"r:")
        assert retry.retry_descriptor.command == b"r:" + task_id and len(task_id) > 0
        assert retry.cancel_descriptor.command == b"c:" + task_id

        server.wait_for_mark(call, "started")
        with pytest.raises(flight.FlightTimedOutError) as again:  # still running: POLL again
            client.get_flight_info(retry.retry_descriptor, POLLING)
        assert poll_error(again).retry_descriptor == retry.retry_descriptor

        server.mark(call, "release").touch()
        info = follow_polls(client, retry.retry_descriptor)
    assert info.schema == GATED_SCHEMA
    assert info.descriptor.command == descriptor.command
    assert read(info).to_pydict() == {"value": [42]}
    assert not server.mark(call, "cancelled").exists()


def test_cancel_descriptor_cancels_the_running_function(server: FlexConnectServer) -> None:
    """GetFlightInfo with the cancel descriptor cancels the task: the function sees it and stops,
    the client gets COMMAND_CANCELLED, and the retry descriptor then answers COMMAND_CANCELLED too."""
    call = token()
    with server.client() as client:
        with pytest.raises(flight.FlightTimedOutError) as first:
            client.get_flight_info(invocation("compat_gated", token=call), POLLING)
        retry = poll_error(first)
        server.wait_for_mark(call, "started")

        with pytest.raises(flight.FlightCancelledError) as cancelled:
            client.get_flight_info(retry.cancel_descriptor, POLLING)
        assert error_info(cancelled).code == gf.ErrorCode.COMMAND_CANCELLED
        server.wait_for_mark(call, "cancelled")
        server.wait_for_mark(call, "stopped")

        assert retry.retry_descriptor is not None
        with pytest.raises(flight.FlightServerError) as after:
            follow_polls(client, retry.retry_descriptor)
        assert error_info(after).code == gf.ErrorCode.COMMAND_CANCELLED


def assert_took_the_deadline(elapsed: float) -> None:
    """The call lasted the deadline: not less, and not much more (slack for a busy machine)."""
    assert CALL_DEADLINE_MS / 1000 * 0.95 <= elapsed < CALL_DEADLINE_MS / 1000 + 10, elapsed


def test_call_deadline_without_polling(short_deadline_server: FlexConnectServer) -> None:
    """A call outliving call_deadline_ms answers TIMEOUT, and the function is cancelled for real."""
    call = token()
    started = time.monotonic()
    with short_deadline_server.client() as client:
        with pytest.raises(flight.FlightTimedOutError) as timed_out:
            client.get_flight_info(invocation("compat_gated", token=call))
    assert_took_the_deadline(time.monotonic() - started)
    assert error_info(timed_out).code == gf.ErrorCode.TIMEOUT
    short_deadline_server.wait_for_mark(call, "cancelled")
    short_deadline_server.wait_for_mark(call, "stopped")


def test_call_deadline_with_polling(short_deadline_server: FlexConnectServer) -> None:
    """Polling a call that outlives call_deadline_ms ends in TIMEOUT, and the function is cancelled."""
    call = token()
    polls: list[gf.RetryInfo] = []
    started = time.monotonic()
    with short_deadline_server.client() as client:
        with pytest.raises(flight.FlightTimedOutError) as timed_out:
            follow_polls(client, invocation("compat_gated", token=call), polls)
    assert_took_the_deadline(time.monotonic() - started)
    assert error_info(timed_out).code == gf.ErrorCode.TIMEOUT
    assert polls, "the call answered POLL before the deadline"
    short_deadline_server.wait_for_mark(call, "cancelled")
    short_deadline_server.wait_for_mark(call, "stopped")


@pytest.mark.parametrize("polling", [False, True], ids=["plain", "polling"])
@pytest.mark.parametrize(
    ("parameters", "code", "fragment"),
    [
        (
            {},
            gf.ErrorCode.COMMAND_FAILED,
            "There was an error while running task: compat_failing fails on purpose",
        ),
        ({"bad_argument": True}, gf.ErrorCode.BAD_ARGUMENT, "'bad_argument' is not acceptable"),
    ],
    ids=["runtime-error", "value-error"],
)
def test_failing_function_is_a_structured_error(
    server: FlexConnectServer, polling: bool, parameters: dict[str, object], code: int, fragment: str
) -> None:
    """A function that raises reaches the client as a FlightServerError whose ErrorInfo has the
    matching code and names the error, without a traceback."""
    descriptor = invocation("compat_failing", **parameters)
    with server.client() as client, pytest.raises(flight.FlightServerError) as failed:
        if polling:
            follow_polls(client, descriptor)
        else:
            client.get_flight_info(descriptor)
    info = error_info(failed)
    assert info.code == code, info
    assert fragment in info.msg
    assert "Traceback" not in (info.detail or "")


@pytest.mark.parametrize("polling", [False, True], ids=["plain", "polling"])
def test_unknown_function_is_a_bad_argument(server: FlexConnectServer, polling: bool) -> None:
    """Calling a function the server does not have is BAD_ARGUMENT naming the function."""
    with server.client() as client, pytest.raises(flight.FlightServerError) as failed:
        client.get_flight_info(invocation("no_such_function"), POLLING if polling else None)
    info = error_info(failed)
    assert info.code == gf.ErrorCode.BAD_ARGUMENT
    assert "no_such_function" in info.msg


def test_retry_descriptor_of_an_unknown_task_is_a_bad_argument(server: FlexConnectServer) -> None:
    """Polling for a task the server does not know answers BAD_ARGUMENT."""
    with server.client() as client, pytest.raises(flight.FlightServerError) as failed:
        client.get_flight_info(flight.FlightDescriptor.for_command(b"r:" + b"0" * 32), POLLING)
    assert error_info(failed).code == gf.ErrorCode.BAD_ARGUMENT


def test_do_get_of_an_unknown_task_is_an_invalid_ticket(server: FlexConnectServer) -> None:
    """DoGet with a FlexConnect ticket for a task the server does not hold answers INVALID_TICKET."""
    ticket = flight.Ticket(orjson.dumps({"task_id": "0" * 32}))
    with server.client() as client, pytest.raises(flight.FlightServerError) as failed:
        client.do_get(ticket).read_all()
    assert error_info(failed).code == gf.ErrorCode.INVALID_TICKET


def test_sigterm_cancels_running_functions_and_exits_zero(
    start_flexconnect: Callable[..., FlexConnectServer],
) -> None:
    """On SIGTERM the server cancels a function still running (it sees the cancel) and exits 0."""
    server = start_flexconnect(polling_interval_ms=100)
    call = token()
    with server.client() as client, pytest.raises(flight.FlightTimedOutError) as first:
        client.get_flight_info(invocation("compat_gated", token=call), POLLING)
    poll_error(first)
    server.wait_for_mark(call, "started")
    server.process.signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    assert server.mark(call, "cancelled").exists()
    assert server.mark(call, "stopped").exists()
    server.process.wait_for_event("server_stopped")


def test_the_client_module_polls_flexconnect(server: FlexConnectServer) -> None:
    """``gooddata_flight_server.client.get_flight_info`` follows FlexConnect's polls to the result."""
    call = token()
    outcome: list[object] = []
    with server.client() as client:
        poller = threading.Thread(
            target=lambda: outcome.append(
                gfc.get_flight_info(client, invocation("compat_gated", token=call), timeout=60)
            )
        )
        poller.start()
        server.wait_for_mark(call, "started")
        server.mark(call, "release").touch()
        poller.join(30)
    (info,) = outcome
    assert isinstance(info, flight.FlightInfo)
    assert read(info).to_pydict() == {"value": [42]}


def test_flexconnect_gets_the_standard_cancel_action_for_free(server: FlexConnectServer) -> None:
    """FlexConnect writes ``{"task_id": ...}`` tickets; the server reads them, so the standard
    CancelFlightInfo action cancels a running FlexConnect function with nothing written for it."""
    call = token()
    with server.client() as client:
        with pytest.raises(flight.FlightTimedOutError) as first:
            client.get_flight_info(invocation("compat_gated", token=call), POLLING)
        retry = poll_error(first)
        assert retry.retry_descriptor is not None
        task_id = retry.retry_descriptor.command.removeprefix(b"r:").decode()
        server.wait_for_mark(call, "started")
        ticket = flight.Ticket(orjson.dumps({"task_id": task_id}))
        info = flight.FlightInfo(
            GATED_SCHEMA, invocation("compat_gated"), [flight.FlightEndpoint(ticket, [])], -1, -1
        )
        assert gfc.cancel_flight_info(client, info) in (CancelStatus.CANCELLED, CancelStatus.CANCELLING)
        server.wait_for_mark(call, "cancelled")
        assert "CancelFlightInfo" in [a.type for a in client.list_actions()]
