"""The SQL data service's entry point: the ``@flight_server_methods`` factory the CLI looks for.

Run from the ``examples`` directory::

    gooddata-flight-server start --methods-provider sql_service.main --config sql_service/config.toml
"""

from __future__ import annotations

import structlog

import gooddata_flight_server as gf

from .config import SqlServiceConfig
from .database import Database
from .demo_data import demo_tables
from .flight_sql import SqlServiceFlightSql
from .methods import SqlServiceMethods

__all__ = ["sql_service"]

log = structlog.get_logger("sql_service")

HEALTH_MODULE = "sql_service"
"""The name under which the service reports its health; NOT_OK (database unusable) fails /live."""


@gf.flight_server_methods
def sql_service(ctx: gf.ServerContext) -> gf.FlightServerMethods:
    """Open the database (creating the demo data in a new one) and return the service's methods."""
    config = SqlServiceConfig.from_settings(ctx.settings)
    health = ctx.health

    def on_fatal() -> None:
        log.error("database_unusable", data_dir=str(config.data_dir))
        health.set_module_status(HEALTH_MODULE, gf.ModuleHealthStatus.NOT_OK)

    database = Database.open(config.database_file, config.threads, config.memory_limit, on_fatal)
    try:
        seeded = config.demo_data and database.seed(demo_tables())
        plain = SqlServiceMethods(ctx, config, database)
        # Flight SQL clients (ADBC, JDBC) and plain Flight clients share the port: what is not
        # Flight SQL goes to the plain methods
        methods = SqlServiceFlightSql(ctx, config, database, fallback=plain)
        tables = database.table_names()
    except BaseException:
        database.close()
        raise
    health.set_module_status(HEALTH_MODULE, gf.ModuleHealthStatus.OK)
    log.info(
        "sql_service_ready",
        flight=ctx.location.uri.decode(),
        health=_url(ctx.config.health_check_host, ctx.config.health_check_port, "/ready"),
        metrics=_url(ctx.config.metrics_host, ctx.config.metrics_port, "/metrics"),
        database=str(config.database_file),
        tables=tables,
        demo_data_created=seeded,
    )
    return methods


def _url(host: str | None, port: int, path: str) -> str | None:
    """Where an HTTP endpoint listens, for the startup log; None when it is off or on a port picked at
    start (``*_listening`` events of the server tell that one)."""
    if not host or not port:
        return None
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}{path}"
