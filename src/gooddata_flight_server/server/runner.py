"""``run``: load a service, serve it until SIGINT/SIGTERM, stop it; the exit code says how it went.

What the CLI does, for Python callers too::

    import sys
    import gooddata_flight_server as gf

    sys.exit(gf.run("my_service.main", ["server.toml"]))

Exit codes: 0 after a clean stop, 1 after a forced stop (a second signal), 2 for user errors (bad
configuration, logging config or methods provider), 3 when the server fails to start (port taken,
methods factory failed). Errors are one line on stderr; ``debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from gooddata_flight_server.loader import LoadError
from gooddata_flight_server.methods import FlightServerMethods, FlightServerMethodsFactory
from gooddata_flight_server.methods_provider import load_methods_factory
from gooddata_flight_server.observability.logging import LoggingConfigError
from gooddata_flight_server.server.server_main import create_server
from gooddata_flight_server.settings import ConfigError, ServerConfig

__all__ = ["EXIT_FORCED", "EXIT_OK", "EXIT_START_FAILED", "EXIT_USAGE", "PROG", "run"]

PROG = "gooddata-flight-server"
EXIT_OK = 0
EXIT_FORCED = 1
EXIT_USAGE = 2
EXIT_START_FAILED = 3


def run(
    methods: str | FlightServerMethods | FlightServerMethodsFactory,
    config_files: Sequence[str | os.PathLike[str]] = (),
    *,
    logging_config: str | os.PathLike[str] | None = None,
    dev_log: bool = False,
    setup_logging: bool | None = None,
    config: ServerConfig | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    debug: bool = False,
) -> int:
    """Serve until SIGINT/SIGTERM (from the main thread) and return the exit code.

    ``methods`` is a methods provider spec (``"pkg.module"`` or ``"pkg.module:factory"``, looked up
    from the current directory and the installed packages), a factory, or a methods object.
    Logging is set up as :func:`create_server` does it; the CLI always sets it up.
    """
    try:
        factory = load_methods_factory(_with_cwd(methods)) if isinstance(methods, str) else methods
        server = create_server(
            factory,
            config_files,
            logging_config=logging_config,
            dev_log=dev_log,
            setup_logging=setup_logging,
            config=config,
            settings=settings,
        )
    except ConfigError as e:
        return _fail(EXIT_USAGE, f"invalid configuration: {'; '.join(e.problems)}", e, debug)
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


def _with_cwd(spec: str) -> str:
    # user modules are looked up from where the command runs, as `python -m` would
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return spec


def _fail(code: int, message: str, error: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    print(f"{PROG}: error: {message}", file=sys.stderr)  # noqa: T201 - the one line a user reads
    return code


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _exit_now(code: int) -> NoReturn:
    logging.shutdown()
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code)
