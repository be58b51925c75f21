"""What the database holds, in the shape of Flight SQL's metadata answers (catalogs, schemas, tables,
table types, primary keys), read from DuckDB's own catalog functions.

Only the service's database file is shown (DuckDB's catalog is the file's name), without DuckDB's
internal schemas and without temporary objects. Name patterns are SQL LIKE patterns matched without
regard to case, as DuckDB's identifiers are; ``\\`` escapes ``%`` and ``_``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import pyarrow

from gooddata_flight_server import flightsql

from .database import Database, quote_identifier

__all__ = ["TABLE_TYPES", "catalogs", "db_schemas", "primary_keys", "tables"]

TABLE_TYPES = ("TABLE", "VIEW")

_RELATIONS_SQL = """
SELECT database_name AS catalog_name, schema_name AS db_schema_name, table_name, 'TABLE' AS table_type
FROM duckdb_tables() WHERE NOT internal AND NOT temporary
UNION ALL
SELECT database_name, schema_name, view_name, 'VIEW'
FROM duckdb_views() WHERE NOT internal AND NOT temporary
"""


def _query(database: Database, sql: str, parameters: Sequence[Any]) -> pyarrow.Table:
    with contextlib.closing(database.cursor()) as cursor, database.errors("Cannot read the catalog"):
        return cursor.sql(sql, params=list(parameters)).to_arrow_table()


def _filters(
    catalog: str | None, schema_pattern: str | None, column: str = "db_schema_name"
) -> tuple[str, list[Any]]:
    """The WHERE clause (and its values) shared by every answer: this database, optional filters."""
    where = ["catalog_name = current_database()"]
    values: list[Any] = []
    if catalog is not None:
        where.append("catalog_name = ?")
        values.append(catalog)
    if schema_pattern is not None:
        where.append(f"{column} ILIKE ? ESCAPE '\\'")
        values.append(schema_pattern)
    return " AND ".join(where), values


def catalogs(database: Database) -> pyarrow.Table:
    return _query(database, "SELECT current_database() AS catalog_name", [])


def db_schemas(database: Database, command: flightsql.GetDbSchemas) -> pyarrow.Table:
    where, values = _filters(command.catalog, command.db_schema_filter_pattern)
    sql = (
        "SELECT * FROM (SELECT database_name AS catalog_name, schema_name AS db_schema_name "
        "FROM duckdb_schemas()) "
        f"WHERE {where} ORDER BY catalog_name, db_schema_name"
    )
    return _query(database, sql, values)


def tables(database: Database, command: flightsql.GetTables) -> pyarrow.Table:
    where, values = _filters(command.catalog, command.db_schema_filter_pattern)
    if command.table_name_filter_pattern is not None:
        where += " AND table_name ILIKE ? ESCAPE '\\'"
        values.append(command.table_name_filter_pattern)
    if command.table_types:
        where += f" AND table_type IN ({', '.join('?' for _ in command.table_types)})"
        values.extend(command.table_types)
    sql = f"SELECT * FROM ({_RELATIONS_SQL}) WHERE {where} ORDER BY ALL"
    found = _query(database, sql, values)
    if not command.include_schema:
        return found
    schemas = [
        flightsql.serialize_schema(_relation_schema(database, row["db_schema_name"], row["table_name"]))
        for row in found.select(["db_schema_name", "table_name"]).to_pylist()
    ]
    return found.append_column("table_schema", pyarrow.array(schemas, pyarrow.binary()))


def _relation_schema(database: Database, schema: str, name: str) -> pyarrow.Schema:
    relation = f"{quote_identifier(schema)}.{quote_identifier(name)}"
    return database.query_schema(f"SELECT * FROM {relation}")


def primary_keys(database: Database, command: flightsql.GetPrimaryKeys) -> pyarrow.Table:
    where, values = _filters(command.catalog, None)
    if command.db_schema is not None:
        where += " AND db_schema_name = ?"
        values.append(command.db_schema)
    sql = f"""
        SELECT * FROM (
            SELECT database_name AS catalog_name, schema_name AS db_schema_name, table_name,
                   unnest(constraint_column_names) AS column_name, constraint_name AS key_name,
                   CAST(generate_subscripts(constraint_column_names, 1) AS INTEGER) AS key_sequence
            FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'
        ) WHERE {where} AND lower(table_name) = lower(?) ORDER BY key_name, key_sequence
    """
    return _query(database, sql, [*values, command.table])
