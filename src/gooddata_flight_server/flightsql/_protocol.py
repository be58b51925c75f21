"""The protobuf messages of the Flight SQL protocol that this layer reads and writes, declared in code.

Flight SQL clients pack their commands into ``google.protobuf.Any`` messages whose type URL names a
message of the package ``arrow.flight.protocol.sql`` (Flight's own ``CancelFlightInfo`` action is
the core's: ``gooddata_flight_server.flight_protocol``). The declarations below follow the protocol:
same package, same message names, same field numbers and types, so the bytes are exactly what any
Flight SQL client sends and expects. Only the messages this layer decodes or encodes are declared;
the names of the rest are listed in :data:`UNSUPPORTED` so that a client asking for one learns that
it is not supported rather than that it is unknown.

``ActionCancelQueryRequest.info`` holds a serialized FlightInfo as ``bytes``, as the protocol
declares it; pyarrow parses those bytes into a ``pyarrow.flight.FlightInfo``.

The descriptors are built on first use into a pool of their own, so nothing is registered in
protobuf's default pool (where an application may have generated classes of the same names).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["SQL_PACKAGE", "UNSUPPORTED", "sql_message"]

SQL_PACKAGE: Final = "arrow.flight.protocol.sql"

_F = descriptor_pb2.FieldDescriptorProto
_STRING: Final = _F.TYPE_STRING
_BYTES: Final = _F.TYPE_BYTES
_BOOL: Final = _F.TYPE_BOOL
_INT32: Final = _F.TYPE_INT32
_UINT32: Final = _F.TYPE_UINT32
_INT64: Final = _F.TYPE_INT64
_MESSAGE: Final = _F.TYPE_MESSAGE
_ENUM: Final = _F.TYPE_ENUM
_TABLE_NOT_EXIST: Final = "CommandStatementIngest.TableDefinitionOptions.TableNotExistOption"
_TABLE_EXISTS: Final = "CommandStatementIngest.TableDefinitionOptions.TableExistsOption"


@dataclass(frozen=True)
class _Field:
    name: str
    number: int
    type: int
    repeated: bool = False
    optional: bool = False
    """proto3 ``optional``: the message tracks whether the field was set."""
    type_name: str | None = None
    """For message and enum fields: the fully qualified name, with a leading dot."""


_SQL_MESSAGES: Final[dict[str, tuple[_Field, ...]]] = {
    # metadata commands (GetFlightInfo / GetSchema; DoGet of the ticket they lead to)
    "CommandGetSqlInfo": (_Field("info", 1, _UINT32, repeated=True),),
    "CommandGetCatalogs": (),
    "CommandGetDbSchemas": (
        _Field("catalog", 1, _STRING, optional=True),
        _Field("db_schema_filter_pattern", 2, _STRING, optional=True),
    ),
    "CommandGetTables": (
        _Field("catalog", 1, _STRING, optional=True),
        _Field("db_schema_filter_pattern", 2, _STRING, optional=True),
        _Field("table_name_filter_pattern", 3, _STRING, optional=True),
        _Field("table_types", 4, _STRING, repeated=True),
        _Field("include_schema", 5, _BOOL),
    ),
    "CommandGetTableTypes": (),
    "CommandGetPrimaryKeys": (
        _Field("catalog", 1, _STRING, optional=True),
        _Field("db_schema", 2, _STRING, optional=True),
        _Field("table", 3, _STRING),
    ),
    # queries and updates
    "CommandStatementQuery": (
        _Field("query", 1, _STRING),
        _Field("transaction_id", 2, _BYTES, optional=True),
    ),
    "TicketStatementQuery": (_Field("statement_handle", 1, _BYTES),),
    "CommandPreparedStatementQuery": (_Field("prepared_statement_handle", 1, _BYTES),),
    "CommandStatementUpdate": (
        _Field("query", 1, _STRING),
        _Field("transaction_id", 2, _BYTES, optional=True),
    ),
    "CommandPreparedStatementUpdate": (_Field("prepared_statement_handle", 1, _BYTES),),
    "CommandStatementIngest": (
        _Field(
            "table_definition_options",
            1,
            _MESSAGE,
            type_name=f".{SQL_PACKAGE}.CommandStatementIngest.TableDefinitionOptions",
        ),
        _Field("table", 2, _STRING),
        _Field("schema", 3, _STRING, optional=True),
        _Field("catalog", 4, _STRING, optional=True),
        _Field("temporary", 5, _BOOL),
        _Field("transaction_id", 6, _BYTES, optional=True),
        _Field(
            "options",
            1000,
            _MESSAGE,
            repeated=True,
            type_name=f".{SQL_PACKAGE}.CommandStatementIngest.OptionsEntry",
        ),
    ),
    "DoPutUpdateResult": (_Field("record_count", 1, _INT64),),
    "DoPutPreparedStatementResult": (_Field("prepared_statement_handle", 1, _BYTES, optional=True),),
    # actions
    "ActionCreatePreparedStatementRequest": (
        _Field("query", 1, _STRING),
        _Field("transaction_id", 2, _BYTES, optional=True),
    ),
    "ActionCreatePreparedStatementResult": (
        _Field("prepared_statement_handle", 1, _BYTES),
        _Field("dataset_schema", 2, _BYTES),
        _Field("parameter_schema", 3, _BYTES),
    ),
    "ActionClosePreparedStatementRequest": (_Field("prepared_statement_handle", 1, _BYTES),),
    "ActionCancelQueryRequest": (_Field("info", 1, _BYTES),),
    "ActionCancelQueryResult": (
        _Field("result", 1, _ENUM, type_name=f".{SQL_PACKAGE}.ActionCancelQueryResult.CancelResult"),
    ),
}

UNSUPPORTED: Final = frozenset(
    {
        "CommandGetXdbcTypeInfo",
        "CommandGetExportedKeys",
        "CommandGetImportedKeys",
        "CommandGetCrossReference",
        "CommandStatementSubstraitPlan",
        "ActionCreatePreparedSubstraitPlanRequest",
        "ActionBeginTransactionRequest",
        "ActionBeginSavepointRequest",
        "ActionEndTransactionRequest",
        "ActionEndSavepointRequest",
    }
)
"""Flight SQL messages this layer knows by name but does not serve (NOT_IMPLEMENTED)."""


def _field(spec: _Field, oneof_index: int | None) -> descriptor_pb2.FieldDescriptorProto:
    field = descriptor_pb2.FieldDescriptorProto(
        name=spec.name,
        number=spec.number,
        type=spec.type,  # type: ignore[arg-type]  # typeshed wants the enum's ValueType
        label=_F.LABEL_REPEATED if spec.repeated else _F.LABEL_OPTIONAL,
        json_name=_json_name(spec.name),
    )
    if spec.type_name is not None:
        field.type_name = spec.type_name
    if oneof_index is not None:
        field.proto3_optional = True
        field.oneof_index = oneof_index
    return field


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _message(name: str, fields: tuple[_Field, ...]) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name)
    optional = [spec for spec in fields if spec.optional]
    for spec in fields:
        oneof_index = optional.index(spec) if spec.optional else None
        message.field.append(_field(spec, oneof_index))
    # proto3 `optional` is a synthetic one-field oneof named after the field, declared after the
    # real ones (there are none here)
    for spec in optional:
        message.oneof_decl.add(name=f"_{spec.name}")
    return message


def _enum(name: str, values: tuple[str, ...]) -> descriptor_pb2.EnumDescriptorProto:
    enum = descriptor_pb2.EnumDescriptorProto(name=name)
    for number, value in enumerate(values):
        enum.value.add(name=value, number=number)
    return enum


def _sql_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="gooddata_flight_server/flightsql/arrow_flight_sql.proto",
        package=SQL_PACKAGE,
        syntax="proto3",
    )
    messages = {name: _message(name, fields) for name, fields in _SQL_MESSAGES.items()}

    ingest = messages["CommandStatementIngest"]
    options = ingest.nested_type.add()
    options.CopyFrom(
        _message(
            "TableDefinitionOptions",
            (
                _Field("if_not_exist", 1, _ENUM, type_name=f".{SQL_PACKAGE}.{_TABLE_NOT_EXIST}"),
                _Field("if_exists", 2, _ENUM, type_name=f".{SQL_PACKAGE}.{_TABLE_EXISTS}"),
            ),
        )
    )
    options.enum_type.append(
        _enum(
            "TableNotExistOption",
            (
                "TABLE_NOT_EXIST_OPTION_UNSPECIFIED",
                "TABLE_NOT_EXIST_OPTION_CREATE",
                "TABLE_NOT_EXIST_OPTION_FAIL",
            ),
        )
    )
    options.enum_type.append(
        _enum(
            "TableExistsOption",
            (
                "TABLE_EXISTS_OPTION_UNSPECIFIED",
                "TABLE_EXISTS_OPTION_FAIL",
                "TABLE_EXISTS_OPTION_APPEND",
                "TABLE_EXISTS_OPTION_REPLACE",
            ),
        )
    )
    # a map<string, string> is a repeated entry message with the map_entry option
    entry = _message("OptionsEntry", (_Field("key", 1, _STRING), _Field("value", 2, _STRING)))
    entry.options.map_entry = True
    ingest.nested_type.append(entry)

    messages["ActionCancelQueryResult"].enum_type.append(
        _enum(
            "CancelResult",
            (
                "CANCEL_RESULT_UNSPECIFIED",
                "CANCEL_RESULT_CANCELLED",
                "CANCEL_RESULT_CANCELLING",
                "CANCEL_RESULT_NOT_CANCELLABLE",
            ),
        )
    )
    file.message_type.extend(messages.values())
    return file


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_sql_file())
    return pool


@functools.cache
def sql_message(name: str) -> Any:
    """The message class of ``arrow.flight.protocol.sql.<name>``; KeyError if it is not declared here.

    Typed ``Any``: the classes are made at run time, so their fields are unknown to type checkers.
    """
    if name not in _SQL_MESSAGES:
        raise KeyError(name)
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(f"{SQL_PACKAGE}.{name}"))
