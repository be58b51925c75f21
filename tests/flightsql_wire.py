"""Flight SQL messages written and read byte by byte, independently of the package under test.

Tests that send "the exact Flight SQL bytes" build them here from the protocol's field numbers with a
minimal protobuf wire encoder, so a wrong field number in the package's own declarations cannot
cancel itself out.
"""

from __future__ import annotations

SQL = "type.googleapis.com/arrow.flight.protocol.sql."


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are sent as their 64-bit two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number: int, value: bytes | str) -> bytes:
    """A length-delimited field (string, bytes or nested message)."""
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_varint(number: int, value: int) -> bytes:
    """A varint field (bool, int32/64, uint32, enum)."""
    return varint(number << 3) + varint(value)


def any_message(name: str, value: bytes = b"", type_url: str | None = None) -> bytes:
    """``google.protobuf.Any``: type_url = 1, value = 2."""
    return field_bytes(1, type_url if type_url is not None else SQL + name) + field_bytes(2, value)


def read_fields(data: bytes) -> dict[int, list[int | bytes]]:
    """Every field of a message by number (varints as ints, length-delimited fields as bytes)."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0

    def read_varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while pos < len(data):
        key = read_varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields.setdefault(number, []).append(read_varint())
        elif wire_type == 2:
            length = read_varint()
            fields.setdefault(number, []).append(data[pos : pos + length])
            pos += length
        else:
            raise ValueError(f"wire type {wire_type} not expected in Flight SQL messages")
    return fields


def unpack_any(data: bytes, name: str) -> dict[int, list[int | bytes]]:
    """The fields of the message in an Any, after checking its type URL names ``name``."""
    envelope = read_fields(data)
    assert envelope[1] == [(SQL + name).encode()], envelope
    value = envelope.get(2, [b""])[0]
    assert isinstance(value, bytes)
    return read_fields(value)
