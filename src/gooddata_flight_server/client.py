"""What pyarrow's ``FlightClient`` lacks for long-running queries: cancel, renew, and polling.

::

    import pyarrow.flight
    from gooddata_flight_server import client as gfc

    with pyarrow.flight.FlightClient("grpc://127.0.0.1:17001") as flight_client:
        info = gfc.get_flight_info(flight_client, descriptor, timeout=300)  # polls while it runs
        endpoint = gfc.renew_flight_endpoint(flight_client, info.endpoints[0])  # keep it longer
        table = flight_client.do_get(endpoint.ticket).read_all()
        gfc.cancel_flight_info(flight_client, other_info)  # CancelStatus.CANCELLED ...

``cancel_flight_info`` and ``renew_flight_endpoint`` send the Flight protocol's standard actions;
any Flight server that implements them answers (this framework does for its tasks).
``get_flight_info`` speaks the polling protocol of GoodData FlexConnect (request header
``x-quiver-pollable``; POLL errors whose RetryInfo says how to retry or cancel), so it also polls
FlexConnect servers; against a server without polling it is a plain GetFlightInfo.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import pyarrow.flight

from gooddata_flight_server.errors import ErrorCode, ErrorInfo, RetryInfo
from gooddata_flight_server.flight_protocol import (
    CANCEL_FLIGHT_INFO,
    RENEW_FLIGHT_ENDPOINT,
    CancelStatus,
    decode_cancel_flight_info_result,
    encode_cancel_flight_info_request,
    encode_renew_flight_endpoint_request,
)

__all__ = ["POLLING_HEADER", "CancelStatus", "cancel_flight_info", "get_flight_info", "renew_flight_endpoint"]

POLLING_HEADER = b"x-quiver-pollable"
_MIN_POLL_SEC = 0.1

Headers = Sequence[tuple[bytes, bytes]]


def _only_result(
    client: pyarrow.flight.FlightClient,
    action: pyarrow.flight.Action,
    options: pyarrow.flight.FlightCallOptions | None,
) -> bytes:
    results = list(client.do_action(action, options))
    if len(results) != 1:
        raise ValueError(f"{action.type}: expected one result, the server sent {len(results)}")
    return bytes(results[0].body.to_pybytes())


def cancel_flight_info(
    client: pyarrow.flight.FlightClient,
    info: pyarrow.flight.FlightInfo,
    options: pyarrow.flight.FlightCallOptions | None = None,
) -> CancelStatus:
    """Cancel the query behind ``info`` (the ``CancelFlightInfo`` action)."""
    action = pyarrow.flight.Action(CANCEL_FLIGHT_INFO, encode_cancel_flight_info_request(info))
    return decode_cancel_flight_info_result(_only_result(client, action, options))


def renew_flight_endpoint(
    client: pyarrow.flight.FlightClient,
    endpoint: pyarrow.flight.FlightEndpoint,
    options: pyarrow.flight.FlightCallOptions | None = None,
) -> pyarrow.flight.FlightEndpoint:
    """Keep the result ``endpoint`` fetches readable longer (the ``RenewFlightEndpoint`` action);
    returns the endpoint with its new ``expiration_time``."""
    action = pyarrow.flight.Action(RENEW_FLIGHT_ENDPOINT, encode_renew_flight_endpoint_request(endpoint))
    return pyarrow.flight.FlightEndpoint.deserialize(_only_result(client, action, options))


def get_flight_info(
    client: pyarrow.flight.FlightClient,
    descriptor: pyarrow.flight.FlightDescriptor,
    *,
    headers: Headers = (),
    timeout: float | None = None,
    call_timeout: float | None = None,
) -> pyarrow.flight.FlightInfo:
    """GetFlightInfo that polls while the server's work runs.

    Each poll is one GetFlightInfo (``call_timeout`` bounds it, ``headers`` go with it, e.g.
    ``[(b"authorization", b"Bearer <token>")]``); the server answers the FlightInfo once ready, or a
    POLL error naming the descriptor to retry with. Keep ``call_timeout`` above the server's poll
    interval (``task_poll_interval_sec``, 2 s by default): a first call given up early cancels the
    query it submitted. After ``timeout`` seconds (None: no limit) the
    query is cancelled on the server and :class:`TimeoutError` raised. Any other error is raised as
    the server sent it.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    options = pyarrow.flight.FlightCallOptions(
        headers=[*headers, (POLLING_HEADER, b"1")], timeout=call_timeout
    )
    current = descriptor
    while True:
        asked = time.monotonic()
        try:
            return client.get_flight_info(current, options)
        except pyarrow.flight.FlightTimedOutError as e:
            retry = _retry_info(e)
            if retry is None or retry.retry_descriptor is None:
                raise
        if deadline is not None and time.monotonic() >= deadline:
            if retry.cancel_descriptor is None:
                raise TimeoutError(f"the query did not finish within {timeout} s")
            _cancel_polled(client, retry.cancel_descriptor, options)
            raise TimeoutError(f"the query did not finish within {timeout} s; it was cancelled on the server")
        # a server that answers POLL at once (no waiting of its own) is asked at most 10 times a second
        time.sleep(max(0.0, _MIN_POLL_SEC - (time.monotonic() - asked)))
        current = retry.retry_descriptor


def _retry_info(error: pyarrow.flight.FlightError) -> RetryInfo | None:
    info = ErrorInfo.maybe_from_pyarrow_error(error)
    if info is None or info.code != ErrorCode.POLL or not info.body:
        return None
    return RetryInfo.from_bytes(info.body)


def _cancel_polled(
    client: pyarrow.flight.FlightClient,
    cancel: pyarrow.flight.FlightDescriptor,
    options: pyarrow.flight.FlightCallOptions,
) -> None:
    # the polling protocol reports the outcome of a cancel descriptor as an error in every case
    with contextlib.suppress(pyarrow.flight.FlightError):
        client.get_flight_info(cancel, options)
