"""``gooddata-flight-server start --methods-provider MODULE[:FUNCTION] ...``: arguments, then :func:`run`.

Exit codes: 0 after a clean stop, 1 after a forced stop (second signal), 2 for user errors (bad
arguments, configuration, logging config or methods provider), 3 when the server fails to start
(port taken, methods factory failed). Errors are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gooddata_flight_server._version import __version__
from gooddata_flight_server.server.runner import EXIT_USAGE, PROG, run

__all__ = ["main", "server_cli"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run an Apache Arrow Flight RPC data service.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start = commands.add_parser("start", help="start the server and serve until SIGINT/SIGTERM")
    start.add_argument(
        "--methods-provider",
        required=True,
        metavar="MODULE[:FUNCTION]",
        help="module holding the @flight_server_methods factory, or MODULE:FUNCTION naming it",
    )
    start.add_argument(
        "--config",
        nargs="*",
        action="extend",
        default=[],
        metavar="FILE",
        help="one or more TOML configuration files; later files override earlier ones key by key",
    )
    start.add_argument(
        "--config-end",
        action="store_true",
        help="ends the list of --config files (accepted for the original package's CLI; not needed here)",
    )
    start.add_argument(
        "--logging-config", metavar="INI", help="logging configuration file (stdlib ini format)"
    )
    start.add_argument("--dev-log", action="store_true", help="pretty console logs instead of JSON lines")
    start.add_argument("--debug", action="store_true", help="print tracebacks of errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "start":
        return run(
            args.methods_provider,
            args.config,
            logging_config=args.logging_config,
            dev_log=args.dev_log,
            setup_logging=True,  # whatever the methods module did to logging while it was imported
            debug=args.debug,
        )
    return EXIT_USAGE  # pragma: no cover - argparse refuses unknown commands


def server_cli() -> None:
    """The console-script entry point (the original package's name for it)."""
    sys.exit(main())


if __name__ == "__main__":
    server_cli()
