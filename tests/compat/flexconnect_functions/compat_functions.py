"""FlexConnect functions the compatibility tests call, written as any FlexConnect user writes them.

Loaded by FlexConnect in the server process (``[flexconnect] functions = ["compat_functions"]``),
never imported by the tests themselves. The functions leave marks in the directory named by the
``compat_functions.record_dir`` setting -- ``<token>.started``, ``<token>.cancelled`` (their
``cancel`` was called) and ``<token>.stopped`` (``call`` gave up because of it) -- and the gated
function finishes once the test creates ``<token>.release`` there; ``token`` is a parameter of the
invocation.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pyarrow
from gooddata_flexconnect import DataSourceMessage, FlexConnectFunction, with_data_source_messages

import gooddata_flight_server as gf

_GATE_LIMIT_SEC = 60.0  # a gated call nobody releases or cancels ends by itself


class _Records:
    """Where the functions leave their marks: set once by ``on_load`` from the server's settings."""

    directory: Path | None = None

    @classmethod
    def load(cls, ctx: gf.ServerContext) -> None:
        cls.directory = Path(ctx.settings.get("compat_functions.record_dir"))

    @classmethod
    def mark(cls, token: str, what: str) -> None:
        assert cls.directory is not None, "on_load has not run"
        (cls.directory / f"{token}.{what}").touch()

    @classmethod
    def released(cls, token: str) -> bool:
        assert cls.directory is not None, "on_load has not run"
        return (cls.directory / f"{token}.release").exists()


class FastFunction(FlexConnectFunction):
    """A small table at once; honours the ``columns`` hint and echoes the ``x-compat-tag`` header."""

    Name = "compat_fast"
    Schema = pyarrow.schema([("id", pyarrow.int64()), ("name", pyarrow.string()), ("tag", pyarrow.string())])
    Metadata: ClassVar[dict[str, Any] | None] = {"description": "a small table", "compat": True}

    def call(
        self, parameters: dict[str, Any], columns: tuple[str, ...] | None, headers: dict[str, list[str]]
    ) -> gf.ArrowData:
        rows = int(parameters.get("rows", 3))
        tag = (headers.get("x-compat-tag") or [""])[0]
        table = pyarrow.table(
            {
                "id": pyarrow.array(range(rows), pyarrow.int64()),
                "name": pyarrow.array([f"row-{i}" for i in range(rows)], pyarrow.string()),
                "tag": pyarrow.array([tag] * rows, pyarrow.string()),
            },
            schema=self.Schema,
        )
        return table.select(list(columns)) if columns else table


class StreamingFunction(FlexConnectFunction):
    """Batches from a RecordBatchReader, with FlexConnect data source messages in the schema metadata."""

    Name = "compat_streaming"
    Schema = pyarrow.schema([("n", pyarrow.int64())])

    def call(
        self, parameters: dict[str, Any], columns: tuple[str, ...] | None, headers: dict[str, list[str]]
    ) -> gf.ArrowData:
        batches = int(parameters.get("batches", 3))
        message = DataSourceMessage(source="compat", correlation_id=str(parameters["token"]), type="info")
        schema = with_data_source_messages([message], self.Schema)
        return pyarrow.RecordBatchReader.from_batches(
            schema,
            (
                pyarrow.record_batch([pyarrow.array([i, i], pyarrow.int64())], schema=schema)
                for i in range(batches)
            ),
        )


class GatedFunction(FlexConnectFunction):
    """Runs until the test releases it or FlexConnect cancels it (then it stops early)."""

    Name = "compat_gated"
    Schema = pyarrow.schema([("value", pyarrow.int64())])

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._token: str | None = None

    @staticmethod
    def on_load(ctx: gf.ServerContext) -> None:
        _Records.load(ctx)

    def call(
        self, parameters: dict[str, Any], columns: tuple[str, ...] | None, headers: dict[str, list[str]]
    ) -> gf.ArrowData:
        token = str(parameters["token"])
        self._token = token
        _Records.mark(token, "started")
        deadline = time.monotonic() + _GATE_LIMIT_SEC
        while not self._cancelled.wait(0.01):
            if _Records.released(token):
                return pyarrow.table({"value": pyarrow.array([42], pyarrow.int64())})
            if time.monotonic() > deadline:
                raise TimeoutError(f"gated call {token} was neither released nor cancelled")
        _Records.mark(token, "stopped")
        raise RuntimeError(f"gated call {token} stopped: it was cancelled")

    def cancel(self) -> bool:
        if self._token is not None:
            _Records.mark(self._token, "cancelled")
        self._cancelled.set()
        return True


class FailingFunction(FlexConnectFunction):
    """Fails: with a ValueError (a bad argument) when asked to, otherwise with a RuntimeError."""

    Name = "compat_failing"
    Schema = pyarrow.schema([("x", pyarrow.int64())])

    def call(
        self, parameters: dict[str, Any], columns: tuple[str, ...] | None, headers: dict[str, list[str]]
    ) -> gf.ArrowData:
        if parameters.get("bad_argument"):
            raise ValueError("compat_failing: parameter 'bad_argument' is not acceptable")
        raise RuntimeError("compat_failing fails on purpose")
