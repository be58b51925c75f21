"""The Flight protocol's standard actions for long-running queries, on the wire.

``CancelFlightInfo`` and ``RenewFlightEndpoint`` (Flight protocol, Arrow 13+) are DoAction calls:
the action body is a ``CancelFlightInfoRequest`` / ``RenewFlightEndpointRequest`` protobuf message,
the single result a ``CancelFlightInfoResult`` / the renewed ``FlightEndpoint``. The two requests
wrap one message each (a FlightInfo, a FlightEndpoint) that pyarrow serializes itself, so the only
protobuf written here is the envelope: one length-delimited field, or one enum field. That is small
enough to write by hand, which keeps the core free of a protobuf dependency;
``tests/unit/test_flight_protocol.py`` checks every byte against the ``protobuf`` package.

Decoding is lenient as protobuf is: unknown fields are skipped, a repeated singular field takes its
last value. Bytes that are no such message raise :class:`ValueError` naming the problem.
"""

from __future__ import annotations

import datetime
import enum
from typing import Final

import pyarrow
import pyarrow.flight

__all__ = [
    "CANCEL_FLIGHT_INFO",
    "RENEW_FLIGHT_ENDPOINT",
    "STANDARD_ACTIONS",
    "CancelStatus",
    "decode_cancel_flight_info_request",
    "decode_cancel_flight_info_result",
    "decode_renew_flight_endpoint_request",
    "encode_cancel_flight_info_request",
    "encode_cancel_flight_info_result",
    "encode_renew_flight_endpoint_request",
    "endpoint_expiring_at",
    "expiration_of",
]

CANCEL_FLIGHT_INFO: Final = "CancelFlightInfo"
RENEW_FLIGHT_ENDPOINT: Final = "RenewFlightEndpoint"
STANDARD_ACTIONS: Final = (
    (
        CANCEL_FLIGHT_INFO,
        "Cancel the queries behind a FlightInfo: the body is a CancelFlightInfoRequest, the result a "
        "CancelFlightInfoResult.",
    ),
    (
        RENEW_FLIGHT_ENDPOINT,
        "Keep the result an endpoint fetches readable longer: the body is a RenewFlightEndpointRequest, "
        "the result the FlightEndpoint with its new expiration_time.",
    ),
)
"""(name, description) of the standard actions the server answers, as ListActions shows them."""


class CancelStatus(enum.IntEnum):
    """``arrow.flight.protocol.CancelStatus``."""

    UNSPECIFIED = 0
    CANCELLED = 1
    CANCELLING = 2
    NOT_CANCELLABLE = 3


_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError(f"{what}: truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 64:
            raise ValueError(f"{what}: varint longer than 10 bytes")


def _fields(data: bytes, what: str) -> dict[int, tuple[int, int | bytes]]:
    """Field number → (wire type, value) of a message's fields; the last occurrence wins."""
    found: dict[int, tuple[int, int | bytes]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos, what)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"{what}: field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _read_varint(data, pos, what)
        elif wire == _LEN:
            size, pos = _read_varint(data, pos, what)
            if pos + size > len(data):
                raise ValueError(f"{what}: a field runs past the end of the message")
            value, pos = bytes(data[pos : pos + size]), pos + size
        elif wire in (_I64, _I32):
            width = 8 if wire == _I64 else 4
            if pos + width > len(data):
                raise ValueError(f"{what}: truncated fixed-width field")
            value, pos = int.from_bytes(data[pos : pos + width], "little"), pos + width
        else:
            raise ValueError(f"{what}: unsupported wire type {wire}")
        found[number] = (wire, value)
    return found


def _message_field(data: bytes, what: str) -> bytes:
    """Field 1, length-delimited: the one message the requests wrap (empty when absent)."""
    wire, value = _fields(data, what).get(1, (_LEN, b""))
    if wire != _LEN or not isinstance(value, bytes):
        raise ValueError(f"{what}: field 1 is not a message")
    return value


def _wrap(payload: bytes) -> bytes:
    return b"\x0a" + _varint(len(payload)) + payload  # field 1, wire type 2


def encode_cancel_flight_info_request(info: pyarrow.flight.FlightInfo) -> bytes:
    return _wrap(info.serialize())


def decode_cancel_flight_info_request(body: bytes) -> pyarrow.flight.FlightInfo:
    what = "CancelFlightInfoRequest"
    payload = _message_field(body, what)
    if not payload:
        raise ValueError(f"{what}: no FlightInfo in the request")
    try:
        return pyarrow.flight.FlightInfo.deserialize(payload)
    except Exception as e:
        raise ValueError(f"{what}: the info field is not a FlightInfo ({e})") from None


def encode_cancel_flight_info_result(status: CancelStatus) -> bytes:
    # proto3 leaves a field at its default value out, so UNSPECIFIED is the empty message
    return b"" if status == CancelStatus.UNSPECIFIED else b"\x08" + _varint(int(status))


def decode_cancel_flight_info_result(body: bytes) -> CancelStatus:
    what = "CancelFlightInfoResult"
    wire, value = _fields(body, what).get(1, (_VARINT, 0))
    if wire != _VARINT or not isinstance(value, int):
        raise ValueError(f"{what}: field 1 is not an enum")
    try:
        return CancelStatus(value)
    except ValueError:
        return CancelStatus.UNSPECIFIED  # an enum value of a newer protocol version


def encode_renew_flight_endpoint_request(endpoint: pyarrow.flight.FlightEndpoint) -> bytes:
    return _wrap(endpoint.serialize())


def decode_renew_flight_endpoint_request(body: bytes) -> pyarrow.flight.FlightEndpoint:
    what = "RenewFlightEndpointRequest"
    payload = _message_field(body, what)
    if not payload:
        raise ValueError(f"{what}: no FlightEndpoint in the request")
    try:
        return pyarrow.flight.FlightEndpoint.deserialize(payload)
    except Exception as e:
        raise ValueError(f"{what}: the endpoint field is not a FlightEndpoint ({e})") from None


_NS_UTC = pyarrow.timestamp("ns", tz="UTC")


def endpoint_expiring_at(
    endpoint: pyarrow.flight.FlightEndpoint, epoch_seconds: float
) -> pyarrow.flight.FlightEndpoint:
    """The same endpoint (ticket, locations, app_metadata) with ``expiration_time`` set."""
    # whole microseconds: pyarrow turns the scalar into a datetime (repr, as_py), which has no nanoseconds
    expiration = pyarrow.scalar(round(epoch_seconds * 1e6) * 1000, type=_NS_UTC)
    return pyarrow.flight.FlightEndpoint(
        endpoint.ticket, endpoint.locations, expiration_time=expiration, app_metadata=endpoint.app_metadata
    )


def expiration_of(endpoint: pyarrow.flight.FlightEndpoint) -> datetime.datetime | None:
    """An endpoint's ``expiration_time`` as an aware UTC datetime; None when it has none."""
    scalar = endpoint.expiration_time
    if scalar is None or not scalar.is_valid:
        return None
    nanos = scalar.cast(_NS_UTC).value
    return datetime.datetime.fromtimestamp(nanos / 1e9, tz=datetime.timezone.utc)
