"""Whose fault a failure is, and what the client is told about it.

A query or an upload that DuckDB rejects (syntax, unknown table or column, conversion, constraint,
a file function the service does not allow) is the client's to fix: it becomes a :class:`ClientError`,
which reaches the client as BAD_ARGUMENT with DuckDB's first line as the message and its whole text
(which points at the offending spot) as the detail. Any other DuckDB error (out of memory, I/O, an
internal or fatal error) is the server's: it propagates, and the server answers with a generic
error and a reference id while the traceback goes to the server log.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator

import duckdb
import pyarrow
import structlog

import gooddata_flight_server as gf

__all__ = ["ClientError", "client_error", "server_failure", "stream_errors"]

log = structlog.get_logger("sql_service")

_CLIENT_FAULTS: tuple[type[duckdb.Error], ...] = (
    duckdb.ProgrammingError,  # parser, binder, catalog, invalid input
    duckdb.DataError,  # conversion, out of range, type mismatch
    duckdb.IntegrityError,  # constraints
    duckdb.NotSupportedError,
    duckdb.PermissionException,  # e.g. read_csv('/etc/passwd'): external access is off
    duckdb.SequenceException,
)
# The same split by the kind of error that starts DuckDB's message ("Conversion Error: ..."), for
# errors that reach Python as Arrow errors while DuckDB's Arrow stream is read.
_CLIENT_KINDS = frozenset(
    {
        "Binder",
        "Catalog",
        "Constraint",
        "Conversion",
        "Decimal",
        "Divide by Zero",
        "Invalid",
        "Invalid Input",
        "Invalid type",
        "Mismatch Type",
        "Not implemented",
        "Out of Range",
        "Parser",
        "Permission",
        "Sequence",
        "Syntax",
    }
)
_KIND = re.compile(r"([A-Za-z][A-Za-z ]*?) Error: ")


class ClientError(ValueError):
    """A request the service refuses; ``info`` is what the client gets (BAD_ARGUMENT)."""

    def __init__(self, msg: str, detail: str | None = None) -> None:
        super().__init__(msg)
        self.info = gf.ErrorInfo(msg=msg, detail=detail, code=gf.ErrorCode.BAD_ARGUMENT)


def client_error(e: duckdb.Error, what: str) -> ClientError | None:
    """The ClientError for a DuckDB error caused by the request, None when the server is at fault.

    ``what`` starts the message, e.g. ``"Invalid query"``.
    """
    if not isinstance(e, _CLIENT_FAULTS):
        return None
    return _client_error(str(e).strip() or type(e).__name__, what)


@contextlib.contextmanager
def stream_errors(what: str) -> Iterator[None]:
    """Classify errors raised while DuckDB's Arrow stream is read.

    DuckDB computes a streamed result as it is read, so its errors may surface there, as Arrow
    errors (often a plain ``OSError``) that carry DuckDB's message. An interrupt becomes
    ``duckdb.InterruptException`` again, a client fault a :class:`ClientError`; the rest propagates.
    """
    try:
        yield
    except (pyarrow.ArrowException, OSError) as e:
        text = str(e).strip()
        match = _KIND.match(text)
        kind = match.group(1) if match else None
        if kind == "INTERRUPT":
            raise duckdb.InterruptException(text) from None
        if kind not in _CLIENT_KINDS:
            raise
        raise _client_error(text, what) from None


def _client_error(text: str, what: str) -> ClientError:
    return ClientError(f"{what}: {text.splitlines()[0]}", detail=text)


def server_failure(task_id: str, error: BaseException) -> gf.TaskError:
    """A task's failure that is the server's (out of memory, I/O, an internal DuckDB error): the
    client gets a generic message with a reference id; DuckDB's text and the traceback, which may
    name files and internals, go to the server log under that reference only."""
    ref = uuid.uuid4().hex
    log.error("query_failed_on_server", task_id=task_id, error_ref=ref, exc_info=error)
    return gf.TaskError(
        gf.ErrorInfo.for_reason(
            gf.ErrorCode.COMMAND_FAILED, f"The query failed on the server. Reference: {ref}"
        )
    )
