"""``python -m gooddata_flight_server`` runs the CLI."""

from gooddata_flight_server.cli import server_cli

server_cli()
