"""Reading Flight SQL requests from bytes and writing the answers the protocol prescribes.

Commands travel as a ``google.protobuf.Any`` holding a message of ``arrow.flight.protocol.sql``: in a
FlightDescriptor's command, in a ticket, in an action body. :func:`unpack` reads the envelope and
raises :class:`NotFlightSql` for bytes that are no Flight SQL message at all (so that a service can
hand them to its plain Flight methods); :func:`decode` reads the message and answers BAD_ARGUMENT
when its bytes do not decode, NOT_IMPLEMENTED for a Flight SQL message the layer does not serve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pyarrow.flight
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from gooddata_flight_server.flightsql._errors import bad_request, not_supported
from gooddata_flight_server.flightsql._protocol import SQL_PACKAGE, UNSUPPORTED, sql_message
from gooddata_flight_server.flightsql.commands import (
    CancelStatus,
    ClosePreparedStatement,
    CreatePreparedStatement,
    GetCatalogs,
    GetDbSchemas,
    GetPrimaryKeys,
    GetSqlInfo,
    GetTables,
    GetTableTypes,
    PreparedStatementQuery,
    PreparedStatementUpdate,
    StatementIngest,
    StatementQuery,
    StatementUpdate,
    TableExists,
    TableNotExist,
)

__all__ = [
    "TYPE_URL_PREFIX",
    "CancelQuery",
    "NotFlightSql",
    "StatementTicket",
    "decode",
    "encode_cancel_query_result",
    "encode_prepared_statement_result",
    "encode_statement_ticket",
    "encode_update_result",
    "pack",
    "unpack",
]

TYPE_URL_PREFIX: Final = f"type.googleapis.com/{SQL_PACKAGE}."
"""Every Flight SQL type URL starts with this; the message name follows."""


class NotFlightSql(ValueError):
    """The bytes are no Flight SQL message; the text says why (not an Any, or another type URL)."""


@dataclass(frozen=True)
class StatementTicket:
    """``TicketStatementQuery``: the ticket of a query's result; the handle names the server's task."""

    handle: bytes


@dataclass(frozen=True)
class CancelQuery:
    """``ActionCancelQueryRequest`` (the deprecated ``CancelQuery`` action): cancel by FlightInfo."""

    info: pyarrow.flight.FlightInfo


def unpack(data: bytes) -> tuple[str, bytes]:
    """The message name (e.g. ``"CommandStatementQuery"``) and bytes of a Flight SQL Any."""
    envelope = any_pb2.Any()
    try:
        envelope.ParseFromString(data)
    except DecodeError as e:
        raise NotFlightSql(f"not a serialized protobuf Any ({e})") from None
    url = envelope.type_url
    if not url:
        raise NotFlightSql("not a serialized protobuf Any with a type URL")
    if not url.startswith(TYPE_URL_PREFIX):
        raise NotFlightSql(
            f"unknown type URL '{url[:200]}'; Flight SQL messages are {TYPE_URL_PREFIX}<Message>"
        )
    return url[len(TYPE_URL_PREFIX) :], envelope.value


def pack(name: str, message: Any) -> bytes:
    """``message`` (of ``arrow.flight.protocol.sql.<name>``) in its Any envelope, serialized."""
    return bytes(
        any_pb2.Any(type_url=TYPE_URL_PREFIX + name, value=message.SerializeToString()).SerializeToString()
    )


def _parse(name: str, value: bytes) -> Any:
    if name in UNSUPPORTED:
        raise not_supported(f"The Flight SQL command {name}")
    try:
        message_class = sql_message(name)
    except KeyError:
        raise not_supported(f"The Flight SQL message '{name[:200]}' (unknown to this server)") from None
    message = message_class()
    try:
        message.ParseFromString(value)
    except DecodeError as e:
        raise bad_request(f"Cannot decode the Flight SQL message {name}: {e}") from None
    return message


def _optional(message: Any, field: str) -> Any:
    return getattr(message, field) if message.HasField(field) else None


def _ingest(m: Any) -> StatementIngest:
    options = m.table_definition_options
    try:
        if_not_exist = TableNotExist(options.if_not_exist)
        if_exists = TableExists(options.if_exists)
    except ValueError as e:
        raise bad_request(f"CommandStatementIngest: unknown table definition option: {e}") from None
    return StatementIngest(
        table=m.table,
        if_not_exist=if_not_exist,
        if_exists=if_exists,
        db_schema=_optional(m, "schema"),
        catalog=_optional(m, "catalog"),
        temporary=m.temporary,
        transaction_id=_optional(m, "transaction_id"),
        options=dict(m.options),
    )


def _cancel_query(m: Any) -> CancelQuery:
    return CancelQuery(_flight_info(m.info, "ActionCancelQueryRequest"))


_DECODERS: Final[dict[str, Callable[[Any], Any]]] = {
    "CommandStatementQuery": lambda m: StatementQuery(m.query, _optional(m, "transaction_id")),
    "CommandPreparedStatementQuery": lambda m: PreparedStatementQuery(m.prepared_statement_handle),
    "CommandStatementUpdate": lambda m: StatementUpdate(m.query, _optional(m, "transaction_id")),
    "CommandPreparedStatementUpdate": lambda m: PreparedStatementUpdate(m.prepared_statement_handle),
    "CommandStatementIngest": _ingest,
    "CommandGetSqlInfo": lambda m: GetSqlInfo(tuple(m.info)),
    "CommandGetCatalogs": lambda m: GetCatalogs(),
    "CommandGetDbSchemas": lambda m: GetDbSchemas(
        _optional(m, "catalog"), _optional(m, "db_schema_filter_pattern")
    ),
    "CommandGetTables": lambda m: GetTables(
        _optional(m, "catalog"),
        _optional(m, "db_schema_filter_pattern"),
        _optional(m, "table_name_filter_pattern"),
        tuple(m.table_types),
        m.include_schema,
    ),
    "CommandGetTableTypes": lambda m: GetTableTypes(),
    "CommandGetPrimaryKeys": lambda m: GetPrimaryKeys(
        m.table, _optional(m, "catalog"), _optional(m, "db_schema")
    ),
    "TicketStatementQuery": lambda m: StatementTicket(m.statement_handle),
    "ActionCreatePreparedStatementRequest": lambda m: CreatePreparedStatement(
        m.query, _optional(m, "transaction_id")
    ),
    "ActionClosePreparedStatementRequest": lambda m: ClosePreparedStatement(m.prepared_statement_handle),
    "ActionCancelQueryRequest": _cancel_query,
}


def decode(data: bytes) -> Any:
    """The request in a Flight SQL Any: a command of :mod:`.commands`, a :class:`StatementTicket`, or
    a :class:`CancelQuery`. NotFlightSql, BAD_ARGUMENT or NOT_IMPLEMENTED as the module says; a
    Flight SQL message that is no request (a result message) is BAD_ARGUMENT."""
    name, value = unpack(data)
    message = _parse(name, value)
    decoder = _DECODERS.get(name)
    if decoder is None:
        raise bad_request(f"The Flight SQL message {name} is an answer, not a request.")
    return decoder(message)


def _flight_info(data: bytes, what: str) -> pyarrow.flight.FlightInfo:
    try:
        return pyarrow.flight.FlightInfo.deserialize(data)
    except Exception as e:
        raise bad_request(f"{what}: the info field is not a serialized FlightInfo ({e})") from None


def encode_statement_ticket(handle: bytes) -> bytes:
    return pack("TicketStatementQuery", sql_message("TicketStatementQuery")(statement_handle=handle))


def encode_prepared_statement_result(handle: bytes, dataset_schema: bytes, parameter_schema: bytes) -> bytes:
    """The body of the CreatePreparedStatement result (an Any)."""
    result = sql_message("ActionCreatePreparedStatementResult")(
        prepared_statement_handle=handle, dataset_schema=dataset_schema, parameter_schema=parameter_schema
    )
    return pack("ActionCreatePreparedStatementResult", result)


def encode_update_result(record_count: int) -> bytes:
    """The DoPut metadata of an update or ingest: a bare ``DoPutUpdateResult`` (no Any)."""
    return bytes(sql_message("DoPutUpdateResult")(record_count=record_count).SerializeToString())


def encode_cancel_query_result(status: CancelStatus) -> bytes:
    """The body of the deprecated CancelQuery result (an Any); its enum has the same numbers."""
    return pack("ActionCancelQueryResult", sql_message("ActionCancelQueryResult")(result=int(status)))
