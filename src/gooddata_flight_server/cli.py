"""``gooddata-flight-server start --methods-provider MODULE[:FUNCTION] ...``

Exit codes: 0 after a clean stop, 1 after a forced stop (second signal), 2 for user errors (bad
arguments, configuration, logging config or methods provider), 3 when the server fails to start
(port taken, methods factory failed). Errors are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from gooddata_flight_server import __version__
from gooddata_flight_server.loader import LoadError, load_methods_factory
from gooddata_flight_server.observability.logging import LoggingConfigError
from gooddata_flight_server.server import create_server
from gooddata_flight_server.settings import ConfigError

__all__ = ["main", "run", "server_cli"]

PROG = "gooddata-flight-server"
EXIT_OK = 0
EXIT_FORCED = 1
EXIT_USAGE = 2
EXIT_START_FAILED = 3


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


def _fail(code: int, message: str, error: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _start(args: argparse.Namespace) -> int:
    debug = bool(args.debug)
    # user modules are looked up from where the command runs, as `python -m` would
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        factory = load_methods_factory(args.methods_provider)
    except LoadError as e:
        return _fail(EXIT_USAGE, str(e), e, debug)
    try:
        server = create_server(
            factory, config_files=args.config, logging_config=args.logging_config, dev_log=args.dev_log
        )
    except ConfigError as e:
        problems = "; ".join(e.problems)
        return _fail(EXIT_USAGE, f"invalid configuration: {problems}", e, debug)
    except (LoggingConfigError, LoadError) as e:
        return _fail(EXIT_USAGE, _one_line(e), e, debug)
    server.start()
    try:
        started = server.wait_for_start()
    except Exception as e:
        with contextlib.suppress(Exception):
            server.wait_for_stop()
        return _fail(
            EXIT_START_FAILED, f"the server failed to start: {type(e).__name__}: {_one_line(e)}", e, debug
        )
    if not started and server.aborted():
        _exit_now(EXIT_FORCED)  # a second signal while starting: the server thread may be stuck in user code
    stopped = server.wait_for_stop()
    code = EXIT_FORCED if server.aborted() else EXIT_OK
    if not stopped or not server.stopped_cleanly:
        # calls or user code still running past the drain deadline (or a forced stop) hold threads
        # that would block a normal exit
        _exit_now(code)
    return code


def _exit_now(code: int) -> NoReturn:
    logging.shutdown()
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "start":
        return _start(args)
    return EXIT_USAGE  # pragma: no cover - argparse refuses unknown commands


def run() -> None:
    sys.exit(main())


server_cli = run
"""The original package's name of the console-script entry point."""

if __name__ == "__main__":
    run()
