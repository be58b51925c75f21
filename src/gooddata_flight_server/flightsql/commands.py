"""The Flight SQL requests a service answers, decoded into plain values.

A client sends each request as a protobuf message packed into ``google.protobuf.Any``; the layer
decodes it (see :mod:`gooddata_flight_server.flightsql.codec`) into one of the frozen dataclasses
below and hands it to the matching method of :class:`~gooddata_flight_server.flightsql.FlightSqlMethods`.
Fields keep the protocol's names; an optional string the client did not send is ``None``, which the
protocol distinguishes from an empty string (``catalog=""`` asks for objects without a catalog).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from gooddata_flight_server.flight_protocol import CancelStatus

__all__ = [
    "CancelStatus",
    "ClosePreparedStatement",
    "CreatePreparedStatement",
    "FlightSqlCommand",
    "GetCatalogs",
    "GetDbSchemas",
    "GetPrimaryKeys",
    "GetSqlInfo",
    "GetTableTypes",
    "GetTables",
    "PreparedStatementQuery",
    "PreparedStatementUpdate",
    "StatementIngest",
    "StatementQuery",
    "StatementUpdate",
    "TableExists",
    "TableNotExist",
]


class TableNotExist(enum.IntEnum):
    """What a bulk ingest does when the target table does not exist (``TableNotExistOption``)."""

    UNSPECIFIED = 0
    CREATE = 1
    FAIL = 2


class TableExists(enum.IntEnum):
    """What a bulk ingest does when the target table exists already (``TableExistsOption``)."""

    UNSPECIFIED = 0
    FAIL = 1
    APPEND = 2
    REPLACE = 3


@dataclass(frozen=True)
class StatementQuery:
    """``CommandStatementQuery``: run a SQL query (GetFlightInfo), or tell its schema (GetSchema)."""

    query: str
    transaction_id: bytes | None = None


@dataclass(frozen=True)
class PreparedStatementQuery:
    """``CommandPreparedStatementQuery``: run a prepared statement (GetFlightInfo), tell its schema
    (GetSchema), or bind its parameters (DoPut)."""

    handle: bytes


@dataclass(frozen=True)
class StatementUpdate:
    """``CommandStatementUpdate``: run a SQL statement that changes data (DoPut); answers a row count."""

    query: str
    transaction_id: bytes | None = None


@dataclass(frozen=True)
class PreparedStatementUpdate:
    """``CommandPreparedStatementUpdate``: run a prepared statement that changes data (DoPut), once
    per row of the uploaded parameters."""

    handle: bytes


@dataclass(frozen=True)
class StatementIngest:
    """``CommandStatementIngest``: load the uploaded record batches into ``table`` (DoPut)."""

    table: str
    if_not_exist: TableNotExist = TableNotExist.UNSPECIFIED
    if_exists: TableExists = TableExists.UNSPECIFIED
    db_schema: str | None = None
    """The protocol's ``schema`` field: the database schema, not an Arrow schema."""
    catalog: str | None = None
    temporary: bool = False
    transaction_id: bytes | None = None
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GetSqlInfo:
    """``CommandGetSqlInfo``: the server's capabilities; ``info`` empty means all it has."""

    info: tuple[int, ...] = ()


@dataclass(frozen=True)
class GetCatalogs:
    """``CommandGetCatalogs``."""


@dataclass(frozen=True)
class GetDbSchemas:
    """``CommandGetDbSchemas``; the filter is a SQL LIKE pattern (``%`` and ``_``)."""

    catalog: str | None = None
    db_schema_filter_pattern: str | None = None


@dataclass(frozen=True)
class GetTables:
    """``CommandGetTables``; filters are SQL LIKE patterns, ``table_types`` empty means any type."""

    catalog: str | None = None
    db_schema_filter_pattern: str | None = None
    table_name_filter_pattern: str | None = None
    table_types: tuple[str, ...] = ()
    include_schema: bool = False


@dataclass(frozen=True)
class GetTableTypes:
    """``CommandGetTableTypes``."""


@dataclass(frozen=True)
class GetPrimaryKeys:
    """``CommandGetPrimaryKeys`` of one table."""

    table: str
    catalog: str | None = None
    db_schema: str | None = None


@dataclass(frozen=True)
class CreatePreparedStatement:
    """``ActionCreatePreparedStatementRequest`` (the ``CreatePreparedStatement`` action)."""

    query: str
    transaction_id: bytes | None = None


@dataclass(frozen=True)
class ClosePreparedStatement:
    """``ActionClosePreparedStatementRequest`` (the ``ClosePreparedStatement`` action)."""

    handle: bytes


FlightSqlCommand = (
    StatementQuery
    | PreparedStatementQuery
    | StatementUpdate
    | PreparedStatementUpdate
    | StatementIngest
    | GetSqlInfo
    | GetCatalogs
    | GetDbSchemas
    | GetTables
    | GetTableTypes
    | GetPrimaryKeys
)
"""Every command that travels in a FlightDescriptor (or, for metadata, in a ticket)."""
