"""The hand-written wire format of CancelFlightInfo and RenewFlightEndpoint against the protobuf package.

The messages of the Flight protocol (``Flight.proto``, package ``arrow.flight.protocol``) that the
two actions use are written out below as protobuf descriptors, independently of the code under test;
the ``protobuf`` package serializes and parses with them. Every encoding must produce the same bytes,
and every decoding must read what protobuf produces.
"""

from __future__ import annotations

import datetime
from typing import Any

import pyarrow
import pyarrow.flight as flight
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from gooddata_flight_server import flight_protocol as fp

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "arrow.flight.protocol"


def _field(name: str, number: int, kind: int, type_name: str | None = None, repeated: bool = False) -> Any:
    field = _F(
        name=name, number=number, type=kind, label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    )
    if type_name is not None:
        field.type_name = type_name
    return field


def _messages() -> dict[str, Any]:
    timestamp = descriptor_pb2.FileDescriptorProto(
        name="google/protobuf/timestamp.proto", package="google.protobuf", syntax="proto3"
    )
    timestamp.message_type.add(
        name="Timestamp", field=[_field("seconds", 1, _F.TYPE_INT64), _field("nanos", 2, _F.TYPE_INT32)]
    )
    flight_file = descriptor_pb2.FileDescriptorProto(
        name="test_flight.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    m = f".{_PACKAGE}."
    descriptor = flight_file.message_type.add(
        name="FlightDescriptor",
        field=[
            _field("type", 1, _F.TYPE_ENUM, f"{m}FlightDescriptor.DescriptorType"),
            _field("cmd", 2, _F.TYPE_BYTES),
            _field("path", 3, _F.TYPE_STRING, repeated=True),
        ],
    )
    descriptor.enum_type.add(
        name="DescriptorType",
        value=[
            descriptor_pb2.EnumValueDescriptorProto(name=n, number=i)
            for i, n in enumerate(("UNKNOWN", "PATH", "CMD"))
        ],
    )
    flight_file.message_type.add(name="Ticket", field=[_field("ticket", 1, _F.TYPE_BYTES)])
    flight_file.message_type.add(name="Location", field=[_field("uri", 1, _F.TYPE_STRING)])
    flight_file.message_type.add(
        name="FlightEndpoint",
        field=[
            _field("ticket", 1, _F.TYPE_MESSAGE, f"{m}Ticket"),
            _field("location", 2, _F.TYPE_MESSAGE, f"{m}Location", repeated=True),
            _field("expiration_time", 3, _F.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
            _field("app_metadata", 4, _F.TYPE_BYTES),
        ],
    )
    flight_file.message_type.add(
        name="FlightInfo",
        field=[
            _field("schema", 1, _F.TYPE_BYTES),
            _field("flight_descriptor", 2, _F.TYPE_MESSAGE, f"{m}FlightDescriptor"),
            _field("endpoint", 3, _F.TYPE_MESSAGE, f"{m}FlightEndpoint", repeated=True),
            _field("total_records", 4, _F.TYPE_INT64),
            _field("total_bytes", 5, _F.TYPE_INT64),
            _field("ordered", 6, _F.TYPE_BOOL),
            _field("app_metadata", 7, _F.TYPE_BYTES),
        ],
    )
    flight_file.enum_type.add(
        name="CancelStatus",
        value=[
            descriptor_pb2.EnumValueDescriptorProto(name=f"CANCEL_STATUS_{n}", number=i)
            for i, n in enumerate(("UNSPECIFIED", "CANCELLED", "CANCELLING", "NOT_CANCELLABLE"))
        ],
    )
    flight_file.message_type.add(
        name="CancelFlightInfoRequest", field=[_field("info", 1, _F.TYPE_MESSAGE, f"{m}FlightInfo")]
    )
    flight_file.message_type.add(
        name="CancelFlightInfoResult", field=[_field("status", 1, _F.TYPE_ENUM, f"{m}CancelStatus")]
    )
    flight_file.message_type.add(
        name="RenewFlightEndpointRequest",
        field=[_field("endpoint", 1, _F.TYPE_MESSAGE, f"{m}FlightEndpoint")],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(timestamp)
    pool.Add(flight_file)
    names = (
        "FlightInfo",
        "FlightEndpoint",
        "CancelFlightInfoRequest",
        "CancelFlightInfoResult",
        "RenewFlightEndpointRequest",
    )
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{n}")) for n in names}


PB = _messages()
SCHEMA = pyarrow.schema([("id", pyarrow.int64()), ("name", pyarrow.string())])
EXPIRES = datetime.datetime(2031, 5, 17, 8, 30, 12, 345678, tzinfo=datetime.timezone.utc)


def _pb_endpoint(
    ticket: bytes, uris: list[str], expires: datetime.datetime | None, app_metadata: bytes
) -> Any:
    endpoint = PB["FlightEndpoint"]()
    endpoint.ticket.ticket = ticket
    for uri in uris:
        endpoint.location.add(uri=uri)
    if expires is not None:
        micros = round(expires.timestamp() * 1e6)
        endpoint.expiration_time.seconds, rest = divmod(micros, 1_000_000)
        endpoint.expiration_time.nanos = rest * 1000
    endpoint.app_metadata = app_metadata
    return endpoint


def _pb_info(endpoints: list[Any]) -> Any:
    info = PB["FlightInfo"]()
    info.schema = SCHEMA.serialize().to_pybytes()
    info.flight_descriptor.type = 2  # CMD
    info.flight_descriptor.cmd = b"select 1"
    info.endpoint.extend(endpoints)
    info.total_records = 3
    info.total_bytes = -1
    return info


def _endpoint(
    ticket: bytes, uris: list[str], expires: datetime.datetime | None, app_metadata: bytes
) -> flight.FlightEndpoint:
    endpoint = flight.FlightEndpoint(ticket, uris, app_metadata=app_metadata)
    return endpoint if expires is None else fp.endpoint_expiring_at(endpoint, expires.timestamp())


ENDPOINTS = [
    (b"task-1", ["grpc://127.0.0.1:17001"], EXPIRES, b""),
    (b'{"task_id": "t2"}', ["grpc+tls://a.example:443", "grpc://b:1"], None, b"meta"),
    (b"", [], None, b""),
]


@pytest.mark.parametrize("values", ENDPOINTS)
def test_renew_request_is_protobufs_bytes_both_ways(values: tuple[Any, ...]) -> None:
    endpoint = _endpoint(*values)
    expected = PB["RenewFlightEndpointRequest"](endpoint=_pb_endpoint(*values)).SerializeToString()
    assert fp.encode_renew_flight_endpoint_request(endpoint) == expected
    assert fp.decode_renew_flight_endpoint_request(expected) == endpoint
    assert fp.expiration_of(endpoint) == values[2]


def test_cancel_request_is_protobufs_bytes_both_ways() -> None:
    info_pb = _pb_info([_pb_endpoint(*values) for values in ENDPOINTS[:2]])
    expected = PB["CancelFlightInfoRequest"](info=info_pb).SerializeToString()
    info = flight.FlightInfo(
        SCHEMA,
        flight.FlightDescriptor.for_command(b"select 1"),
        [_endpoint(*v) for v in ENDPOINTS[:2]],
        3,
        -1,
    )
    assert fp.encode_cancel_flight_info_request(info) == expected
    assert fp.decode_cancel_flight_info_request(expected) == info


@pytest.mark.parametrize("status", list(fp.CancelStatus))
def test_cancel_result_is_protobufs_bytes_both_ways(status: fp.CancelStatus) -> None:
    expected = PB["CancelFlightInfoResult"](status=int(status)).SerializeToString()
    assert fp.encode_cancel_flight_info_result(status) == expected
    assert fp.decode_cancel_flight_info_result(expected) is status


def test_decoding_skips_unknown_fields_and_takes_the_last_value() -> None:
    """As protobuf parsers do: fields of a newer protocol version are skipped."""
    result = PB["CancelFlightInfoResult"](status=2).SerializeToString()
    unknown = b"\x10\x07" + b"\x1a\x03abc" + b"\x25\x01\x02\x03\x04" + b"\x29" + bytes(8)
    assert fp.decode_cancel_flight_info_result(unknown + result) is fp.CancelStatus.CANCELLING
    assert fp.decode_cancel_flight_info_result(b"\x08\x01" + result) is fp.CancelStatus.CANCELLING
    assert (
        fp.decode_cancel_flight_info_result(b"\x08\x09") is fp.CancelStatus.UNSPECIFIED
    )  # a newer enum value


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "no FlightInfo"),
        (b"\x0a\x05ab", "runs past the end"),
        (b"\x0a", "truncated varint"),
        (b"\x08\x01", "field 1 is not a message"),
        (b"\x0a\x03abc", "is not a FlightInfo"),
        (b"\x0f", "unsupported wire type"),
    ],
)
def test_bad_cancel_requests_say_what_is_wrong(body: bytes, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        fp.decode_cancel_flight_info_request(body)


def test_bad_renew_request_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="no FlightEndpoint"):
        fp.decode_renew_flight_endpoint_request(b"")
