"""Flight SQL for services built on gooddata-flight-server: standard SQL clients (ADBC, JDBC, BI tools)
talk to the service.

Subclass :class:`FlightSqlMethods`, override the methods of the commands the service serves, and
return an instance from the ``@gf.flight_server_methods`` factory::

    from gooddata_flight_server import flightsql

    class MyMethods(flightsql.FlightSqlMethods):
        def statement_query(self, context, command):
            return MyQueryTask(command.query)   # a gf.Task producing a gf.FlightDataTaskResult

Needs the ``flightsql`` extra (``pip install 'gooddata-flight-server[flightsql]'``), which brings
``protobuf``. Importing ``gooddata_flight_server`` alone never imports this package.
"""

try:
    import google.protobuf  # noqa: F401  # the one dependency this package adds
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "gooddata_flight_server.flightsql needs the protobuf package: "
        "pip install 'gooddata-flight-server[flightsql]'"
    ) from e

from gooddata_flight_server.flightsql.codec import NotFlightSql
from gooddata_flight_server.flightsql.commands import (
    CancelStatus,
    ClosePreparedStatement,
    CreatePreparedStatement,
    FlightSqlCommand,
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
from gooddata_flight_server.flightsql.methods import FlightSqlMethods
from gooddata_flight_server.flightsql.prepared import PreparedStatement
from gooddata_flight_server.flightsql.schemas import (
    CATALOGS_SCHEMA,
    DB_SCHEMAS_SCHEMA,
    PRIMARY_KEYS_SCHEMA,
    TABLE_TYPES_SCHEMA,
    TABLES_SCHEMA,
    TABLES_WITH_SCHEMA_SCHEMA,
    conform,
    serialize_schema,
)
from gooddata_flight_server.flightsql.sql_info import (
    SQL_INFO_SCHEMA,
    Int32,
    SqlInfo,
    SqlInfoValue,
    SqlSupportedTransaction,
    sql_info_table,
)
from gooddata_flight_server.tasks.cancellation import cancel_task, cancel_tasks

__all__ = [
    "CATALOGS_SCHEMA",
    "DB_SCHEMAS_SCHEMA",
    "PRIMARY_KEYS_SCHEMA",
    "SQL_INFO_SCHEMA",
    "TABLES_SCHEMA",
    "TABLES_WITH_SCHEMA_SCHEMA",
    "TABLE_TYPES_SCHEMA",
    "CancelStatus",
    "ClosePreparedStatement",
    "CreatePreparedStatement",
    "FlightSqlCommand",
    "FlightSqlMethods",
    "GetCatalogs",
    "GetDbSchemas",
    "GetPrimaryKeys",
    "GetSqlInfo",
    "GetTableTypes",
    "GetTables",
    "Int32",
    "NotFlightSql",
    "PreparedStatement",
    "PreparedStatementQuery",
    "PreparedStatementUpdate",
    "SqlInfo",
    "SqlInfoValue",
    "SqlSupportedTransaction",
    "StatementIngest",
    "StatementQuery",
    "StatementUpdate",
    "TableExists",
    "TableNotExist",
    "cancel_task",
    "cancel_tasks",
    "conform",
    "serialize_schema",
    "sql_info_table",
]
