"""The service's DuckDB database: one file in the data directory, shared by every call.

DuckDB connections are not thread-safe, so each call and each query task works on a cursor of its
own (``connection.cursor()``: a new connection to the same database). Reads run concurrently and see
a consistent snapshot; writes (DoPut uploads, Flight SQL updates and ingests) are serialised by a lock
and run in a transaction, so a failed or refused write leaves the database as it was.

The database is opened with external access off: queries cannot read or write files, attach other
databases or install extensions. Only what clients uploaded (and the demo data) can be queried.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow

from .errors import ClientError, client_error

__all__ = ["Database", "LoadResult", "StatementKind", "TableInfo", "arrow_reader", "quote_identifier"]

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_UPLOAD = "__sql_service_upload"
_UPDATES = frozenset(
    {
        duckdb.StatementType.INSERT,
        duckdb.StatementType.UPDATE,
        duckdb.StatementType.DELETE,
        duckdb.StatementType.CREATE,
        duckdb.StatementType.DROP,
        duckdb.StatementType.ALTER,
    }
)
_TABLES_SQL = (
    "SELECT table_name FROM duckdb_tables() "
    "WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary "
    "ORDER BY table_name"
)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def arrow_reader(relation: duckdb.DuckDBPyRelation, batch_size: int) -> pyarrow.RecordBatchReader:
    """A reader that streams the relation's rows (DuckDB 1.x spells it ``fetch_arrow_reader``)."""
    to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
    return to_reader(batch_size)


def _arrow_table(relation: duckdb.DuckDBPyRelation) -> pyarrow.Table:
    to_table = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return to_table()


@dataclasses.dataclass(frozen=True)
class TableInfo:
    name: str
    schema: pyarrow.Schema
    num_rows: int


@dataclasses.dataclass(frozen=True)
class StatementKind:
    """What :meth:`Database.classify` found: a "query" or an "update", and the names of its
    parameters ("1", "2"... for ``?`` and ``$1``; names for ``$name``)."""

    kind: Literal["query", "update"]
    parameters: tuple[str, ...]
    positional: bool


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """What a DoPut did; sent back to the uploader as JSON in the DoPut metadata."""

    table: str
    created: bool
    rows_loaded: int
    total_rows: int


class Database:
    """The DuckDB database of the service; create it with :meth:`open`, end it with :meth:`close`."""

    def __init__(
        self, connection: duckdb.DuckDBPyConnection, path: Path, on_fatal: Callable[[], None]
    ) -> None:
        self._connection = connection
        self._path = path
        self._on_fatal = on_fatal
        self._write_lock = threading.Lock()
        self._closed = False

    @staticmethod
    def open(
        path: Path,
        threads: int = 0,
        memory_limit: str | None = None,
        on_fatal: Callable[[], None] | None = None,
    ) -> Database:
        """Open (or create) the database file; ``on_fatal`` is called when DuckDB reports that the
        database is no longer usable, so that the service can report itself not live."""
        path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        # set last: from now on no query can change the settings above
        config["lock_configuration"] = True
        return Database(duckdb.connect(str(path), config=config), path, on_fatal or _nothing)

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        """Close the database (idempotent); DuckDB checkpoints its write-ahead log into the file."""
        if not self._closed:
            self._closed = True
            self._connection.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own, for one call or one task; close it when done."""
        return self._connection.cursor()

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn DuckDB errors caused by the request into :class:`ClientError` (message starting with
        ``what``); let the others propagate, after reporting a fatal one."""
        try:
            yield
        except duckdb.Error as e:
            if isinstance(e, duckdb.FatalException):
                self._on_fatal()
            error = client_error(e, what)
            if error is None:
                raise
            raise error from None

    # -- reading ----------------------------------------------------------------------------------

    def table_names(self) -> list[str]:
        with contextlib.closing(self.cursor()) as cursor, self.errors("Cannot list tables"):
            return _table_names(cursor)

    def resolve_table(self, name: str) -> str:
        """The table's name as stored (names are case-insensitive); ClientError if there is none."""
        names = self.table_names()
        found = _find(names, name)
        if found is None:
            known = ", ".join(names) or "none"
            raise ClientError(f"Unknown table '{name}'. Tables: {known}.")
        return found

    def tables(self, prefix: str = "") -> list[TableInfo]:
        """Every table whose name starts with ``prefix`` (case-insensitive), with schema and row count."""
        infos: list[TableInfo] = []
        with contextlib.closing(self.cursor()) as cursor, self.errors("Cannot list tables"):
            for name in _table_names(cursor):
                if not name.lower().startswith(prefix.lower()):
                    continue
                relation = cursor.sql(f"SELECT * FROM {quote_identifier(name)}")
                schema = _arrow_table(relation.limit(0)).schema
                num_rows = _count(cursor, f"SELECT count(*) FROM {quote_identifier(name)}")
                infos.append(TableInfo(name, schema, num_rows))
        return infos

    def table_schema(self, name: str) -> pyarrow.Schema:
        table = self.resolve_table(name)
        return self.query_schema(f"SELECT * FROM {quote_identifier(table)}")

    def check_query(self, sql: str) -> None:
        """Accept exactly one read-only (SELECT) statement; ClientError says what is wrong otherwise.

        Plain Flight queries only read: data changes through DoPut (uploads, Flight SQL updates).
        """
        if not sql.strip():
            raise ClientError("The query is empty: send one SQL SELECT statement as the command.")
        with contextlib.closing(self.cursor()) as cursor, self.errors("Invalid query"):
            statements = cursor.extract_statements(sql)
        if len(statements) != 1:
            raise ClientError(f"Send exactly one SQL statement; the command holds {len(statements)}.")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise ClientError(
                f"Only read-only SELECT queries run here, not {kind.name}; upload data with DoPut."
            )

    def query_schema(self, sql: str) -> pyarrow.Schema:
        """The schema of a query's result, without running it (``check_query`` it first)."""
        with contextlib.closing(self.cursor()) as cursor, self.errors("Invalid query"):
            return _arrow_table(cursor.sql(sql).limit(0)).schema

    # -- writing ----------------------------------------------------------------------------------

    def load(self, table: str, data: pyarrow.RecordBatchReader | pyarrow.Table) -> LoadResult:
        """Create ``table`` from the data, or append the data if the table exists with the same columns.

        All or nothing: the data is loaded in one transaction, and a schema clash or a failure while
        reading the data leaves the table as it was. (DoPut hands over data it read in full, so the
        write lock is never held while a client is still uploading.)
        """
        return self.ingest(table, data, create=True, if_exists="append")

    def ingest(
        self,
        table: str,
        data: pyarrow.RecordBatchReader | pyarrow.Table,
        *,
        create: bool,
        if_exists: Literal["fail", "append", "replace"],
    ) -> LoadResult:
        """Load the data into ``table``: create it if it is missing (unless ``create`` is false), and
        if it exists fail, append (same columns needed) or replace it. All or nothing, as :meth:`load`."""
        if not _TABLE_NAME.fullmatch(table):
            raise ClientError(
                f"Invalid table name {table!r}: use 1-63 letters, digits and underscores, not starting "
                "with a digit."
            )
        what = f"Cannot load data into table '{table}'"
        with self._write_lock, contextlib.closing(self.cursor()) as cursor, self.errors(what):
            cursor.register(_UPLOAD, data)
            try:
                return self._load_registered(cursor, table, create, if_exists)
            finally:
                with contextlib.suppress(duckdb.Error):
                    cursor.unregister(_UPLOAD)

    # -- statements (Flight SQL) --------------------------------------------------------------------

    def classify(self, sql: str) -> StatementKind:
        """Whether ``sql`` (exactly one statement) reads ("query") or changes data ("update"), and how
        many parameters it takes; ClientError for anything else (files, attached databases, settings,
        transactions are not for clients)."""
        if not sql.strip():
            raise ClientError("The statement is empty: send one SQL statement.")
        with contextlib.closing(self.cursor()) as cursor, self.errors("Invalid statement"):
            statements = cursor.extract_statements(sql)
        if len(statements) != 1:
            raise ClientError(f"Send exactly one SQL statement; the text holds {len(statements)}.")
        statement = statements[0]
        names = sorted(statement.named_parameters)
        positional = all(name.isdigit() for name in names)
        parameters = tuple(sorted(names, key=int) if positional else names)
        if statement.type == duckdb.StatementType.SELECT:
            return StatementKind("query", parameters, positional)
        if statement.type in _UPDATES:
            return StatementKind("update", parameters, positional)
        raise ClientError(f"{statement.type.name} statements are not allowed here.")

    def execute_update(self, sql: str, parameters: Sequence[Any] | None = None) -> int:
        """Run a statement that changes data, once per parameter set (once when None), all in one
        transaction; the rows changed (0 for statements without a count, such as CREATE TABLE)."""
        with self._write_lock, contextlib.closing(self.cursor()) as cursor, self.errors("Statement failed"):
            cursor.begin()
            try:
                changed = 0
                for values in [None] if parameters is None else parameters:
                    rows = cursor.execute(sql, values).fetchall()
                    if len(rows) == 1 and len(rows[0]) == 1 and isinstance(rows[0][0], int):
                        changed += int(rows[0][0])
                cursor.commit()
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    cursor.rollback()
                raise
        return changed

    def seed(self, tables: Mapping[str, pyarrow.Table]) -> bool:
        """Create the given tables if the database has no tables at all; True if it did."""
        with self._write_lock, contextlib.closing(self.cursor()) as cursor, self.errors("Cannot seed"):
            if _table_names(cursor):
                return False
            cursor.begin()
            try:
                for name, data in tables.items():
                    cursor.register(_UPLOAD, data)
                    cursor.execute(f"CREATE TABLE {quote_identifier(name)} AS SELECT * FROM {_UPLOAD}")
                    cursor.unregister(_UPLOAD)
                cursor.commit()
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    cursor.rollback()
                raise
        return True

    def _load_registered(
        self, cursor: duckdb.DuckDBPyConnection, table: str, create: bool, if_exists: str
    ) -> LoadResult:
        upload_columns = _columns(cursor, _UPLOAD)
        cursor.begin()
        try:
            existing = _find(_table_names(cursor), table)
            quoted = quote_identifier(existing or table)
            if existing is None and not create:
                raise ClientError(f"Table '{table}' does not exist; nothing was loaded.")
            if existing is not None and if_exists == "fail":
                raise ClientError(f"Table '{existing}' exists already; nothing was loaded.")
            if existing is None or if_exists == "replace":
                verb = "CREATE OR REPLACE TABLE" if existing is not None else "CREATE TABLE"
                loaded = _count(cursor, f"{verb} {quoted} AS SELECT * FROM {_UPLOAD}")
            else:
                _check_same_columns(existing, _columns(cursor, quoted), upload_columns)
                loaded = _count(cursor, f"INSERT INTO {quoted} SELECT * FROM {_UPLOAD}")
            total = _count(cursor, f"SELECT count(*) FROM {quoted}")
            cursor.commit()
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                cursor.rollback()
            raise
        return LoadResult(
            table=existing or table,
            created=existing is None or if_exists == "replace",
            rows_loaded=loaded,
            total_rows=total,
        )


def _nothing() -> None:
    pass


def _table_names(cursor: duckdb.DuckDBPyConnection) -> list[str]:
    return [str(row[0]) for row in cursor.execute(_TABLES_SQL).fetchall()]


def _count(cursor: duckdb.DuckDBPyConnection, sql: str) -> int:
    """The single number a statement answers (a count, or the rows a CREATE/INSERT stored).

    ``fetchall`` rather than ``fetchone``: DuckDB 2 streams results, and a partly read result would
    keep the cursor busy for the next statement.
    """
    rows = cursor.execute(sql).fetchall()
    return int(rows[0][0]) if rows else 0


def _find(names: list[str], name: str) -> str | None:
    folded = name.lower()
    return next((n for n in names if n.lower() == folded), None)


def _columns(cursor: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of each column, in order."""
    return [(str(row[0]), str(row[1])) for row in cursor.execute(f"DESCRIBE {relation}").fetchall()]


def _describe(columns: list[tuple[str, str]]) -> str:
    return ", ".join(f"{name} {kind}" for name, kind in columns)


def _check_same_columns(table: str, expected: list[tuple[str, str]], got: list[tuple[str, str]]) -> None:
    """Appending needs the same columns (names case-insensitive) with the same DuckDB types, in order."""
    why = None
    if len(expected) != len(got):
        why = f"the table has {len(expected)} columns, the upload {len(got)}"
    else:
        for index, ((e_name, e_type), (g_name, g_type)) in enumerate(zip(expected, got, strict=True), 1):
            if e_name.lower() != g_name.lower() or e_type != g_type:
                why = (
                    f"column {index} is '{e_name} {e_type}' in the table "
                    f"but '{g_name} {g_type}' in the upload"
                )
                break
    if why is not None:
        raise ClientError(
            f"Cannot append to table '{table}': the upload's schema does not match ({why}). "
            "Nothing was loaded.",
            detail=f"table columns: {_describe(expected)}\nupload columns: {_describe(got)}",
        )
