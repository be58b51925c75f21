"""What each Flight SQL request is to the layer: the actions it serves or refuses, the method and the
schema of each metadata command (catalogs, schemas, tables...), and the protocol's names of decoded
requests for messages."""

from __future__ import annotations

from typing import Final

import pyarrow

from gooddata_flight_server.flightsql import codec, schemas
from gooddata_flight_server.flightsql.commands import (
    ClosePreparedStatement,
    CreatePreparedStatement,
    GetCatalogs,
    GetDbSchemas,
    GetPrimaryKeys,
    GetSqlInfo,
    GetTables,
    GetTableTypes,
)
from gooddata_flight_server.flightsql.sql_info import SQL_INFO_SCHEMA

__all__ = [
    "ACTIONS",
    "ACTION_REQUESTS",
    "METADATA",
    "METADATA_HOOKS",
    "UNSUPPORTED_ACTIONS",
    "Metadata",
    "metadata_schema",
    "request_name",
]

ACTIONS: Final = (
    ("CreatePreparedStatement", "Create a prepared statement (Flight SQL)."),
    ("ClosePreparedStatement", "Close a prepared statement (Flight SQL)."),
    ("CancelQuery", "Cancel the query behind a FlightInfo (Flight SQL, deprecated)."),
)
UNSUPPORTED_ACTIONS: Final = frozenset(
    {
        "CreatePreparedSubstraitPlan",
        "BeginTransaction",
        "EndTransaction",
        "BeginSavepoint",
        "EndSavepoint",
        "SetSessionOptions",
        "GetSessionOptions",
        "CloseSession",
    }
)
ACTION_REQUESTS: Final[dict[str, type]] = {
    "CreatePreparedStatement": CreatePreparedStatement,
    "ClosePreparedStatement": ClosePreparedStatement,
    "CancelQuery": codec.CancelQuery,
}

Metadata = GetSqlInfo | GetCatalogs | GetDbSchemas | GetTables | GetTableTypes | GetPrimaryKeys
METADATA: Final = (GetSqlInfo, GetCatalogs, GetDbSchemas, GetTables, GetTableTypes, GetPrimaryKeys)
METADATA_HOOKS: Final[dict[type, str]] = {
    GetCatalogs: "get_catalogs",
    GetDbSchemas: "get_db_schemas",
    GetTables: "get_tables",
    GetTableTypes: "get_table_types",
    GetPrimaryKeys: "get_primary_keys",
}
"""The method of ``FlightSqlMethods`` that answers each metadata command (GetSqlInfo: ``sql_info``)."""


def metadata_schema(command: Metadata) -> pyarrow.Schema:
    """The schema the protocol prescribes for the command's result."""
    if isinstance(command, GetSqlInfo):
        return SQL_INFO_SCHEMA
    if isinstance(command, GetCatalogs):
        return schemas.CATALOGS_SCHEMA
    if isinstance(command, GetDbSchemas):
        return schemas.DB_SCHEMAS_SCHEMA
    if isinstance(command, GetTables):
        return schemas.TABLES_WITH_SCHEMA_SCHEMA if command.include_schema else schemas.TABLES_SCHEMA
    if isinstance(command, GetTableTypes):
        return schemas.TABLE_TYPES_SCHEMA
    return schemas.PRIMARY_KEYS_SCHEMA


_NAMES: Final[dict[type, str]] = {
    codec.StatementTicket: "TicketStatementQuery",
    codec.CancelQuery: "ActionCancelQueryRequest",
    CreatePreparedStatement: "ActionCreatePreparedStatementRequest",
    ClosePreparedStatement: "ActionClosePreparedStatementRequest",
}


def request_name(request: object) -> str:
    """The protocol's name of a decoded request (``CommandGetTables``...), for messages."""
    return _NAMES.get(type(request), f"Command{type(request).__name__}")
