"""Flight SQL values without a server: SqlInfo tables, metadata schemas, prepared statement handles."""

from __future__ import annotations

import subprocess
import sys
import time

import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server import flightsql
from gooddata_flight_server.flightsql.prepared import PreparedStatements


def test_sql_info_values_take_the_union_member_of_their_type() -> None:
    """str, bool, int, Int32, list[str] and dict[int, list[int]] land in union members 0-5."""
    values = {
        0: "name",
        3: True,
        10_000: 7,
        8: flightsql.Int32(0),
        508: ["SELECT", "FROM"],
        517: {1: [2, 3]},
    }
    table = flightsql.sql_info_table(values)
    assert table.schema == flightsql.SQL_INFO_SCHEMA
    assert table.column("info_name").to_pylist() == [0, 3, 8, 508, 517, 10_000]
    union = table.column("value").chunk(0)
    assert union.type_codes.to_pylist() == [0, 1, 3, 4, 5, 2]
    assert table.to_pylist()[3]["value"] == ["SELECT", "FROM"]
    assert table.to_pylist()[4]["value"] == [(1, [2, 3])]


def test_sql_info_answers_what_was_asked_in_order_and_skips_unknown_ids() -> None:
    """Requested ids come back in the order asked, duplicates once; ids without a value are left out."""
    table = flightsql.sql_info_table({0: "n", 1: "v", 2: "a"}, [2, 999, 0, 2])
    assert table.to_pylist() == [{"info_name": 2, "value": "a"}, {"info_name": 0, "value": "n"}]


def test_sql_info_refuses_values_the_protocol_cannot_carry() -> None:
    """A value of a type with no union member is a TypeError naming the id."""
    with pytest.raises(TypeError, match="SqlInfo 5"):
        flightsql.sql_info_table({5: 1.5})  # type: ignore[dict-item]


def test_conform_reorders_and_casts_to_the_protocol_schema() -> None:
    """Columns are picked by name in the protocol's order and cast to its types; extra ones dropped."""
    answer = pyarrow.table(
        {
            "table_type": ["TABLE"],
            "table_name": pyarrow.array(["t"], pyarrow.large_utf8()),
            "extra": [1],
            "db_schema_name": ["main"],
            "catalog_name": pyarrow.array([None], pyarrow.utf8()),
        }
    )
    table = flightsql.conform(answer, flightsql.TABLES_SCHEMA, "GetTables")
    assert table.schema == flightsql.TABLES_SCHEMA
    assert table.to_pylist() == [
        {"catalog_name": None, "db_schema_name": "main", "table_name": "t", "table_type": "TABLE"}
    ]


def test_conform_names_what_is_wrong_with_an_answer() -> None:
    """A missing column, nulls in a non-null column, or an impossible cast is a ValueError naming it."""
    with pytest.raises(ValueError, match="GetTableTypes: the service's answer lacks the column"):
        flightsql.conform(pyarrow.table({"type": ["x"]}), flightsql.TABLE_TYPES_SCHEMA, "GetTableTypes")
    with pytest.raises(ValueError, match="column table_type must not hold nulls"):
        flightsql.conform(
            pyarrow.table({"table_type": pyarrow.array([None], pyarrow.utf8())}),
            flightsql.TABLE_TYPES_SCHEMA,
            "GetTableTypes",
        )
    keys = pyarrow.table(
        {
            "catalog_name": ["c"],
            "db_schema_name": ["s"],
            "table_name": ["t"],
            "column_name": ["a"],
            "key_name": ["pk"],
            "key_sequence": ["first"],
        }
    )
    with pytest.raises(ValueError, match="key_sequence is not int32"):
        flightsql.conform(keys, flightsql.PRIMARY_KEYS_SCHEMA, "GetPrimaryKeys")


def test_serialized_schema_reads_back() -> None:
    """serialize_schema writes the IPC form that pyarrow (and every Flight SQL client) reads back."""
    schema = pyarrow.schema([("a", pyarrow.int64()), ("b", pyarrow.utf8())])
    assert pyarrow.ipc.read_schema(pyarrow.py_buffer(flightsql.serialize_schema(schema))) == schema


def _bad_argument(e: pytest.ExceptionInfo[flight.FlightServerError]) -> str:
    info = gf.ErrorInfo.from_pyarrow_error(e.value)
    assert info.code == gf.ErrorCode.BAD_ARGUMENT
    return info.msg


def test_prepared_statements_by_handle() -> None:
    """Handles are unique; bound parameters stay with their statement; closing twice is harmless."""
    registry = PreparedStatements(idle_timeout_sec=60, max_statements=10)
    first = registry.add(flightsql.PreparedStatement("SELECT ?"))
    second = registry.add(flightsql.PreparedStatement("SELECT 2"))
    assert first != second
    parameters = pyarrow.table({"p": [1]})
    registry.bind(first, parameters)
    assert registry.get(first) == (flightsql.PreparedStatement("SELECT ?"), parameters)
    assert registry.get(second)[1] is None
    assert registry.remove(first) is not None
    assert registry.remove(first) is None
    with pytest.raises(flight.FlightServerError) as e:
        registry.get(first)
    assert "Unknown prepared statement handle" in _bad_argument(e)


def test_idle_prepared_statements_expire_and_their_number_is_bounded() -> None:
    """Statements idle past the timeout are dropped when the next is created; past the cap, creating fails."""
    registry = PreparedStatements(idle_timeout_sec=0.05, max_statements=2)
    old = registry.add(flightsql.PreparedStatement("SELECT 1"))
    time.sleep(0.1)
    registry.add(flightsql.PreparedStatement("SELECT 2"))
    assert len(registry) == 1
    with pytest.raises(flight.FlightServerError):
        registry.get(old)
    # the cap, where nothing can go idle while the test runs however slowly
    capped = PreparedStatements(idle_timeout_sec=3600, max_statements=2)
    capped.add(flightsql.PreparedStatement("SELECT 3"))
    capped.add(flightsql.PreparedStatement("SELECT 4"))
    with pytest.raises(flight.FlightServerError) as e:
        capped.add(flightsql.PreparedStatement("SELECT 5"))
    assert "Too many open prepared statements" in _bad_argument(e)


def test_the_framework_imports_without_flight_sql() -> None:
    """Importing gooddata_flight_server does not import the Flight SQL layer (nor protobuf through it)."""
    code = "import sys, gooddata_flight_server; print('gooddata_flight_server.flightsql' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
