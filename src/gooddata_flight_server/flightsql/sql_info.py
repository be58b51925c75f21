"""SqlInfo: what a Flight SQL server tells clients about itself (the answer to ``CommandGetSqlInfo``).

A service describes itself as a mapping from :class:`SqlInfo` ids (or its own ids, from 10 000 on) to
values; :func:`sql_info_table` turns that into the Arrow table the protocol prescribes: one row per id,
the value in a dense union whose member is chosen by the value's Python type:

============================  ===========================  =======================================
Python value                  union member (type code)     used by the protocol for
============================  ===========================  =======================================
``str``                       ``string_value`` (0)         names, versions, quote characters
``bool``                      ``bool_value`` (1)           capabilities
``int``                       ``bigint_value`` (2)         limits (``SQL_MAX_*``)
:class:`Int32`                ``int32_bitmask`` (3)        ordinals, bitmasks, timeouts
``list[str]``                 ``string_list`` (4)          keywords, function names
``dict[int, list[int]]``      ``int32_to_int32_list_map``  ``SQL_SUPPORTS_CONVERT``
============================  ===========================  =======================================
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Final, TypeAlias

import pyarrow

__all__ = ["SQL_INFO_SCHEMA", "Int32", "SqlInfo", "SqlInfoValue", "SqlSupportedTransaction", "sql_info_table"]


class SqlInfo(enum.IntEnum):
    """The ids of the protocol's ``SqlInfo`` enum that servers most often answer (ids 0-9 999 are
    the protocol's; a server's own start at 10 000)."""

    FLIGHT_SQL_SERVER_NAME = 0
    FLIGHT_SQL_SERVER_VERSION = 1
    FLIGHT_SQL_SERVER_ARROW_VERSION = 2
    FLIGHT_SQL_SERVER_READ_ONLY = 3
    FLIGHT_SQL_SERVER_SQL = 4
    FLIGHT_SQL_SERVER_SUBSTRAIT = 5
    FLIGHT_SQL_SERVER_SUBSTRAIT_MIN_VERSION = 6
    FLIGHT_SQL_SERVER_SUBSTRAIT_MAX_VERSION = 7
    FLIGHT_SQL_SERVER_TRANSACTION = 8
    FLIGHT_SQL_SERVER_CANCEL = 9
    FLIGHT_SQL_SERVER_BULK_INGESTION = 10
    FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED = 11
    FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT = 100
    FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT = 101
    SQL_DDL_CATALOG = 500
    SQL_DDL_SCHEMA = 501
    SQL_DDL_TABLE = 502
    SQL_IDENTIFIER_CASE = 503
    SQL_IDENTIFIER_QUOTE_CHAR = 504
    SQL_QUOTED_IDENTIFIER_CASE = 505
    SQL_ALL_TABLES_ARE_SELECTABLE = 506
    SQL_NULL_ORDERING = 507
    SQL_KEYWORDS = 508
    SQL_NUMERIC_FUNCTIONS = 509
    SQL_STRING_FUNCTIONS = 510
    SQL_SYSTEM_FUNCTIONS = 511
    SQL_DATETIME_FUNCTIONS = 512
    SQL_SEARCH_STRING_ESCAPE = 513
    SQL_EXTRA_NAME_CHARACTERS = 514
    SQL_SUPPORTS_COLUMN_ALIASING = 515
    SQL_NULL_PLUS_NULL_IS_NULL = 516
    SQL_SUPPORTS_CONVERT = 517
    SQL_SCHEMA_TERM = 529
    SQL_PROCEDURE_TERM = 530
    SQL_CATALOG_TERM = 531
    SQL_CATALOG_AT_START = 532


class SqlSupportedTransaction(enum.IntEnum):
    """Values of ``FLIGHT_SQL_SERVER_TRANSACTION``: which transaction actions the server serves."""

    NONE = 0
    TRANSACTION = 1
    SAVEPOINT = 2


class Int32(int):
    """An int sent as the protocol's ``int32_bitmask`` member rather than ``bigint_value``."""

    __slots__ = ()


SqlInfoValue: TypeAlias = str | bool | int | Sequence[str] | Mapping[int, Sequence[int]]

_STRING, _BOOL, _BIGINT, _INT32, _STRING_LIST, _INT32_MAP = range(6)
_MEMBERS: Final = [
    pyarrow.field("string_value", pyarrow.utf8()),
    pyarrow.field("bool_value", pyarrow.bool_()),
    pyarrow.field("bigint_value", pyarrow.int64()),
    pyarrow.field("int32_bitmask", pyarrow.int32()),
    pyarrow.field("string_list", pyarrow.list_(pyarrow.utf8())),
    pyarrow.field("int32_to_int32_list_map", pyarrow.map_(pyarrow.int32(), pyarrow.list_(pyarrow.int32()))),
]

SQL_INFO_SCHEMA: Final = pyarrow.schema(
    [
        pyarrow.field("info_name", pyarrow.uint32(), nullable=False),
        pyarrow.field("value", pyarrow.dense_union(_MEMBERS, list(range(len(_MEMBERS)))), nullable=False),
    ]
)
"""The schema of every GetSqlInfo result, as the protocol prescribes."""


def _member(info_id: int, value: object) -> int:
    # bool before int (bool is an int), Int32 before int
    if isinstance(value, str):
        return _STRING
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, Int32):
        return _INT32
    if isinstance(value, int):
        return _BIGINT
    if isinstance(value, Mapping):
        return _INT32_MAP
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return _STRING_LIST
    raise TypeError(f"SqlInfo {info_id}: cannot send a {type(value).__name__} value")


def sql_info_table(values: Mapping[int, SqlInfoValue], requested: Sequence[int] = ()) -> pyarrow.Table:
    """The GetSqlInfo answer: the ``requested`` ids the server has a value for (all when empty), in
    the order asked (id order for all). Ids the server does not know are left out, as the protocol
    allows; TypeError for a value of a type the protocol has no member for."""
    ids = list(dict.fromkeys(requested)) if requested else sorted(values)
    rows = [(info_id, values[info_id]) for info_id in ids if info_id in values]
    children: list[list[object]] = [[] for _ in _MEMBERS]
    type_ids: list[int] = []
    offsets: list[int] = []
    for info_id, value in rows:
        member = _member(info_id, value)
        item: object = value
        if isinstance(value, Mapping):
            item = list(value.items())
        elif member == _STRING_LIST:
            item = list(value)  # type: ignore[arg-type]  # _member checked it is a sequence of str
        type_ids.append(member)
        offsets.append(len(children[member]))
        children[member].append(item)
    union = pyarrow.UnionArray.from_dense(
        pyarrow.array(type_ids, pyarrow.int8()),
        pyarrow.array(offsets, pyarrow.int32()),
        [pyarrow.array(child, field.type) for child, field in zip(children, _MEMBERS, strict=True)],
        [field.name for field in _MEMBERS],
        list(range(len(_MEMBERS))),
    )
    info_names = pyarrow.array([info_id for info_id, _ in rows], pyarrow.uint32())
    return pyarrow.Table.from_arrays([info_names, union], schema=SQL_INFO_SCHEMA)
