"""A SQL data service over an embedded DuckDB database, built on gooddata-flight-server.

Start it with ``gooddata-flight-server start --methods-provider sql_service.main --config
sql_service/config.toml`` from the ``examples`` directory (``make run`` does exactly that); see
README.md beside this file for what it serves and how to talk to it.
"""
