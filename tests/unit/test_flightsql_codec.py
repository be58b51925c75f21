"""Flight SQL messages: decoding the protocol's bytes, encoding answers, refusing what is not Flight SQL."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server import flightsql
from gooddata_flight_server.flightsql import codec
from tests.flightsql_wire import any_message, field_bytes, field_varint, read_fields, unpack_any, varint

_INGEST_OPTIONS = field_varint(1, 1) + field_varint(2, 2)  # if_not_exist CREATE, if_exists APPEND

DECODED = [
    (
        any_message("CommandStatementQuery", field_bytes(1, "SELECT 1") + field_bytes(2, b"tx")),
        flightsql.StatementQuery("SELECT 1", b"tx"),
    ),
    (any_message("CommandStatementQuery", field_bytes(1, "SELECT 2")), flightsql.StatementQuery("SELECT 2")),
    (
        any_message("CommandPreparedStatementQuery", field_bytes(1, b"h1")),
        flightsql.PreparedStatementQuery(b"h1"),
    ),
    (
        any_message("CommandStatementUpdate", field_bytes(1, "DELETE FROM t")),
        flightsql.StatementUpdate("DELETE FROM t"),
    ),
    (
        any_message("CommandPreparedStatementUpdate", field_bytes(1, b"h2")),
        flightsql.PreparedStatementUpdate(b"h2"),
    ),
    (
        any_message(
            "CommandStatementIngest",
            field_bytes(1, _INGEST_OPTIONS)
            + field_bytes(2, "sales")
            + field_bytes(3, "main")
            + field_bytes(4, "db")
            + field_varint(5, 1)
            + field_bytes(6, b"tx")
            + field_bytes(1000, field_bytes(1, "k") + field_bytes(2, "v")),
        ),
        flightsql.StatementIngest(
            "sales",
            flightsql.TableNotExist.CREATE,
            flightsql.TableExists.APPEND,
            db_schema="main",
            catalog="db",
            temporary=True,
            transaction_id=b"tx",
            options={"k": "v"},
        ),
    ),
    # info is a packed repeated uint32 (as ADBC sends it) ...
    (
        any_message("CommandGetSqlInfo", field_bytes(1, varint(8) + varint(504))),
        flightsql.GetSqlInfo((8, 504)),
    ),
    # ... and parsers must accept it unpacked too
    (any_message("CommandGetSqlInfo", field_varint(1, 0) + field_varint(1, 1)), flightsql.GetSqlInfo((0, 1))),
    (any_message("CommandGetCatalogs"), flightsql.GetCatalogs()),
    (
        any_message("CommandGetDbSchemas", field_bytes(1, "") + field_bytes(2, "ma%")),
        flightsql.GetDbSchemas(catalog="", db_schema_filter_pattern="ma%"),
    ),
    (
        any_message(
            "CommandGetTables",
            field_bytes(1, "db")
            + field_bytes(2, "m_in")
            + field_bytes(3, "ord%")
            + field_bytes(4, "TABLE")
            + field_bytes(4, "VIEW")
            + field_varint(5, 1),
        ),
        flightsql.GetTables("db", "m_in", "ord%", ("TABLE", "VIEW"), include_schema=True),
    ),
    (any_message("CommandGetTables"), flightsql.GetTables()),
    (any_message("CommandGetTableTypes"), flightsql.GetTableTypes()),
    (
        any_message(
            "CommandGetPrimaryKeys", field_bytes(1, "db") + field_bytes(2, "main") + field_bytes(3, "t")
        ),
        flightsql.GetPrimaryKeys("t", catalog="db", db_schema="main"),
    ),
    (any_message("TicketStatementQuery", field_bytes(1, b"0123")), codec.StatementTicket(b"0123")),
    (
        any_message("ActionCreatePreparedStatementRequest", field_bytes(1, "SELECT ?")),
        flightsql.CreatePreparedStatement("SELECT ?"),
    ),
    (
        any_message("ActionClosePreparedStatementRequest", field_bytes(1, b"h3")),
        flightsql.ClosePreparedStatement(b"h3"),
    ),
]


@pytest.mark.parametrize(("data", "expected"), DECODED, ids=[type(e).__name__ for _, e in DECODED])
def test_decodes_the_protocols_bytes(data: bytes, expected: object) -> None:
    """Each request decodes from bytes written with the protocol's field numbers."""
    assert codec.decode(data) == expected


def test_decodes_cancel_query() -> None:
    """CancelQuery (in an Any) carries a serialized FlightInfo in field 1."""
    ticket = flight.Ticket(b"t")
    info = flight.FlightInfo(
        pyarrow.schema([("a", pyarrow.int8())]),
        flight.FlightDescriptor.for_command(b"q"),
        [flight.FlightEndpoint(ticket, [])],
        -1,
        -1,
    )
    request = codec.decode(any_message("ActionCancelQueryRequest", field_bytes(1, info.serialize())))
    assert isinstance(request, codec.CancelQuery)
    assert request.info.endpoints[0].ticket == ticket


def test_encodes_answers_with_the_protocols_field_numbers() -> None:
    """Tickets, prepared statement results, update counts and cancel results read back by field number."""
    assert unpack_any(codec.encode_statement_ticket(b"abc"), "TicketStatementQuery") == {1: [b"abc"]}
    assert unpack_any(
        codec.encode_prepared_statement_result(b"h", b"ds", b"ps"), "ActionCreatePreparedStatementResult"
    ) == {1: [b"h"], 2: [b"ds"], 3: [b"ps"]}
    assert read_fields(codec.encode_update_result(42)) == {1: [42]}
    assert read_fields(codec.encode_update_result(-1)) == {1: [(1 << 64) - 1]}
    assert unpack_any(
        codec.encode_cancel_query_result(flightsql.CancelStatus.NOT_CANCELLABLE), "ActionCancelQueryResult"
    ) == {1: [3]}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"SELECT 1", "not a serialized protobuf Any"),
        (b"", "not a serialized protobuf Any with a type URL"),
        (
            any_message("", type_url="type.googleapis.com/other.Message"),
            "unknown type URL 'type.googleapis.com/other.Message'",
        ),
    ],
)
def test_bytes_that_are_no_flight_sql(data: bytes, why: str) -> None:
    """Bytes that are not a Flight SQL Any raise NotFlightSql saying why, for a fallback to take them."""
    with pytest.raises(codec.NotFlightSql, match=why):
        codec.decode(data)


@pytest.mark.parametrize(
    "name",
    [
        "CommandGetXdbcTypeInfo",
        "CommandGetExportedKeys",
        "CommandGetImportedKeys",
        "CommandGetCrossReference",
        "CommandStatementSubstraitPlan",
        "ActionBeginTransactionRequest",
        "CommandFromTheFuture",
    ],
)
def test_flight_sql_messages_not_served_are_not_implemented(name: str) -> None:
    """A Flight SQL message the layer does not serve is NotImplementedError naming it (gRPC UNIMPLEMENTED)."""
    with pytest.raises(NotImplementedError, match=name):
        codec.decode(any_message(name))


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (
            any_message("CommandStatementQuery", b"\x0a\x05ab"),
            "Cannot decode the Flight SQL message CommandStatementQuery",
        ),
        (any_message("CommandStatementQuery", field_bytes(1, b"\xff\xfe")), "CommandStatementQuery"),
        (
            any_message("DoPutUpdateResult", field_varint(1, 3)),
            "DoPutUpdateResult is an answer, not a request",
        ),
        (
            any_message("CommandStatementIngest", field_bytes(1, field_varint(1, 9))),
            "unknown table definition option",
        ),
        (any_message("ActionCancelQueryRequest", field_bytes(1, b"\x01\x02")), "not a serialized FlightInfo"),
    ],
)
def test_malformed_messages_are_bad_argument(data: bytes, fragment: str) -> None:
    """A Flight SQL message whose bytes do not decode is BAD_ARGUMENT naming the message and the problem."""
    with pytest.raises(flight.FlightServerError) as e:
        codec.decode(data)
    info = gf.ErrorInfo.from_pyarrow_error(e.value)
    assert info.code == gf.ErrorCode.BAD_ARGUMENT
    assert fragment in info.msg


_NAMES = [
    "CommandStatementQuery",
    "CommandStatementIngest",
    "CommandGetTables",
    "CommandGetSqlInfo",
    "TicketStatementQuery",
    "ActionCancelQueryRequest",
    "CommandGetXdbcTypeInfo",
    "Unknown",
]


def _decodes_or_refuses(data: bytes) -> None:
    try:
        codec.decode(data)
    except (codec.NotFlightSql, NotImplementedError):
        pass
    except flight.FlightServerError as e:
        assert gf.ErrorInfo.from_pyarrow_error(e).code == gf.ErrorCode.BAD_ARGUMENT


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.binary(max_size=64))
def test_any_bytes_decode_or_are_refused_cleanly(data: bytes) -> None:
    """Arbitrary bytes never escape the decoder as anything but its three refusals."""
    _decodes_or_refuses(data)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.sampled_from(_NAMES), st.binary(max_size=64))
def test_flight_sql_envelopes_with_arbitrary_values_decode_or_are_refused(name: str, value: bytes) -> None:
    """A Flight SQL type URL with arbitrary message bytes decodes or is refused; nothing else escapes."""
    _decodes_or_refuses(any_message(name, value))
