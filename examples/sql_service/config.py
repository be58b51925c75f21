"""The service's own configuration: the ``[sql_service]`` section, read once when the server starts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["SECTION", "SqlServiceConfig"]

SECTION = "sql_service"

_DEFAULTS: dict[str, Any] = {
    "data_dir": ".data/sql_service",
    "demo_data": True,
    "query_timeout_sec": 300.0,
    "batch_size": 65536,
    "in_memory_result_kb": 32768,
    "threads": 0,
    "memory_limit": "",
}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def env_name(key: str) -> str:
    """The environment variable that overrides ``[sql_service] key``."""
    return f"GOODDATA_FLIGHT_{SECTION.upper()}__{key.upper()}"


@dataclasses.dataclass(frozen=True)
class SqlServiceConfig:
    """Validated ``[sql_service]`` settings; see config.toml beside this file for what each means."""

    data_dir: Path
    demo_data: bool
    query_timeout_sec: float
    """0: no limit."""
    batch_size: int
    in_memory_result_kb: int
    """A result up to this size is read whole by its query task and kept as a table; a bigger one
    keeps this much in memory and streams the rest from DuckDB on DoGet."""
    threads: int
    """0: DuckDB's default (one per core)."""
    memory_limit: str | None
    """None: DuckDB's default (80 % of the machine's memory)."""

    @property
    def database_file(self) -> Path:
        return self.data_dir / "sql_service.duckdb"

    @staticmethod
    def from_settings(settings: Any) -> SqlServiceConfig:
        """Read the section from the server's Dynaconf settings; ValueError lists every bad setting."""
        problems: list[str] = []

        def get(key: str) -> Any:
            value = settings.get(f"{SECTION}.{key}", None)
            return _DEFAULTS[key] if value is None or value == "" else value

        def problem(key: str, expected: str, value: Any) -> None:
            problems.append(f"{SECTION}.{key} ({env_name(key)}): expected {expected}, got {value!r}")

        data_dir = get("data_dir")
        if not isinstance(data_dir, str):
            problem("data_dir", "a directory path", data_dir)
            data_dir = _DEFAULTS["data_dir"]

        demo_data = get("demo_data")
        if isinstance(demo_data, str) and demo_data.strip().lower() in _TRUE | _FALSE:
            demo_data = demo_data.strip().lower() in _TRUE
        if not isinstance(demo_data, bool):
            problem("demo_data", "true or false", demo_data)
            demo_data = True

        timeout = get("query_timeout_sec")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            problem("query_timeout_sec", "a number of seconds, 0 or more (0 = no limit)", timeout)
            timeout = 0.0

        batch_size = get("batch_size")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            problem("batch_size", "a whole number of rows, at least 1", batch_size)
            batch_size = 1

        in_memory = get("in_memory_result_kb")
        if isinstance(in_memory, bool) or not isinstance(in_memory, int) or in_memory < 0:
            problem("in_memory_result_kb", "a whole number of KiB, 0 or more", in_memory)
            in_memory = 0

        threads = get("threads")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            problem("threads", "a whole number, 0 or more (0 = one per core)", threads)
            threads = 0

        memory_limit = get("memory_limit")
        if not isinstance(memory_limit, str):
            problem("memory_limit", 'a DuckDB size such as "1GB" (empty = DuckDB default)', memory_limit)
            memory_limit = ""

        if problems:
            raise ValueError(f"invalid [{SECTION}] configuration: " + "; ".join(problems))
        return SqlServiceConfig(
            data_dir=Path(data_dir).expanduser().absolute(),
            demo_data=demo_data,
            query_timeout_sec=float(timeout),
            batch_size=batch_size,
            in_memory_result_kb=in_memory,
            threads=threads,
            memory_limit=memory_limit or None,
        )
