"""The Arrow schemas of Flight SQL metadata results, as the protocol prescribes them.

Clients decode metadata results by these schemas, so a service's answer is brought to them with
:func:`conform`: columns picked by name in the protocol's order and cast to the protocol's types.
A service may build its answer any way it likes (from its catalog with SQL, or by hand with
``pyarrow.table``) as long as the columns are there.
"""

from __future__ import annotations

from typing import Final

import pyarrow

__all__ = [
    "CATALOGS_SCHEMA",
    "DB_SCHEMAS_SCHEMA",
    "PRIMARY_KEYS_SCHEMA",
    "TABLES_SCHEMA",
    "TABLES_WITH_SCHEMA_SCHEMA",
    "TABLE_TYPES_SCHEMA",
    "conform",
    "serialize_schema",
]


def _utf8(name: str, nullable: bool = True) -> pyarrow.Field:
    return pyarrow.field(name, pyarrow.utf8(), nullable=nullable)


CATALOGS_SCHEMA: Final = pyarrow.schema([_utf8("catalog_name", nullable=False)])
DB_SCHEMAS_SCHEMA: Final = pyarrow.schema([_utf8("catalog_name"), _utf8("db_schema_name", nullable=False)])
TABLES_SCHEMA: Final = pyarrow.schema(
    [
        _utf8("catalog_name"),
        _utf8("db_schema_name"),
        _utf8("table_name", nullable=False),
        _utf8("table_type", nullable=False),
    ]
)
TABLES_WITH_SCHEMA_SCHEMA: Final = TABLES_SCHEMA.append(
    pyarrow.field("table_schema", pyarrow.binary(), nullable=False)
)
"""GetTables with ``include_schema``: ``table_schema`` holds each table's Arrow schema in its IPC
form (see :func:`serialize_schema`)."""
TABLE_TYPES_SCHEMA: Final = pyarrow.schema([_utf8("table_type", nullable=False)])
PRIMARY_KEYS_SCHEMA: Final = pyarrow.schema(
    [
        _utf8("catalog_name"),
        _utf8("db_schema_name"),
        _utf8("table_name", nullable=False),
        _utf8("column_name", nullable=False),
        _utf8("key_name"),
        pyarrow.field("key_sequence", pyarrow.int32(), nullable=False),
    ]
)


def serialize_schema(schema: pyarrow.Schema) -> bytes:
    """An Arrow schema in the IPC form Flight SQL uses (``table_schema``, prepared statement schemas)."""
    return bytes(schema.serialize().to_pybytes())


def conform(table: pyarrow.Table, schema: pyarrow.Schema, what: str) -> pyarrow.Table:
    """``table`` with exactly the columns of ``schema``, in its order and types.

    ValueError naming ``what`` (the command, for the server log) when a column is missing, cannot be
    cast, or holds nulls where the protocol forbids them: a mistake of the service, not of the client.
    """
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{what}: the service's answer lacks the column(s) {', '.join(missing)}")
    columns = []
    for field in schema:
        column = table.column(field.name)
        if not field.nullable and column.null_count:
            raise ValueError(f"{what}: column {field.name} must not hold nulls")
        try:
            columns.append(column.cast(field.type))
        except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError) as e:
            raise ValueError(f"{what}: column {field.name} is not {field.type}: {e}") from None
    return pyarrow.Table.from_arrays(columns, schema=schema)
