"""Turn loosely typed configuration values into checked Python values.

Values reach us from TOML files (already typed), from environment variables (parsed as TOML by
Dynaconf, so ``17001`` is an int but ``yes`` stays a string) and from Python code building config
objects directly. A :class:`Kind` accepts the spellings a person would reasonably write in any of
those places and either returns the canonical value or raises :class:`BadValue` with a message;
callers attach the setting's name and environment variable, so one pass reports everything that
is wrong at once.

Nothing here touches Dynaconf or ``os.environ``.
"""

from __future__ import annotations

import difflib
import enum
import math
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from gooddata_flight_server._files import FileProblem, read_small_file

__all__ = [
    "ENV_PREFIX",
    "BadValue",
    "Flag",
    "FrozenMap",
    "Integer",
    "Kind",
    "NameMap",
    "Number",
    "OneOf",
    "Pem",
    "SectionReader",
    "Text",
    "env_var_name",
    "show",
    "suggest",
]

ENV_PREFIX = "GOODDATA_FLIGHT"

_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})
_BOOL_HINT = "a boolean (true/false, yes/no, on/off, 1/0)"
_PEM_MARKER = b"-----BEGIN "

_E = TypeVar("_E", bound=enum.Enum)


class FrozenMap(Mapping[str, str]):
    """A read-only, hashable mapping for frozen config objects.

    ``types.MappingProxyType`` would do for read-only access, but it cannot be deep-copied or
    pickled, which breaks ``dataclasses.asdict``/``replace``-style handling of the config.
    """

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


def env_var_name(section: str, key: str) -> str:
    """Name of the environment variable that sets ``section.key`` (Dynaconf's nesting convention)."""
    return f"{ENV_PREFIX}_{section.upper()}__{key.upper()}"


def show(value: Any) -> str:
    """A short one-line rendering of a bad value for an error message (repr escapes newlines)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def suggest(key: str, known: Collection[str]) -> str:
    """``", did you mean 'x'?"`` for the closest known name, or nothing."""
    close = difflib.get_close_matches(key, list(known), n=1)
    return f", did you mean '{close[0]}'?" if close else ""


class BadValue(ValueError):
    """A value a :class:`Kind` cannot accept; the message says what was expected.

    ``part`` says which of a setting's keys is at fault when one value is built from several.
    """

    def __init__(self, message: str, part: int = 0) -> None:
        super().__init__(message)
        self.part = part


# -- kinds of settings ------------------------------------------------------------------------------

_T = TypeVar("_T")


class Kind(Generic[_T]):
    """How one setting is read and checked: ``coerce`` turns any accepted spelling into the value."""

    def coerce(self, value: Any) -> _T:
        raise NotImplementedError

    def toml(self, value: Any) -> str:
        """The value written as TOML, for documentation."""
        if value is None:
            return "not set"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, enum.Enum):
            return f'"{value.value}"'
        if isinstance(value, str):
            return f'"{value}"'
        if isinstance(value, Mapping):
            return "{" + ", ".join(f'{k} = "{v}"' for k, v in value.items()) + "}"
        return str(value)


class Text(Kind[Any]):
    """A string, stripped; blank counts as not set (None) unless the setting is not optional."""

    def __init__(self, *, optional: bool = True) -> None:
        self.optional = optional

    def coerce(self, value: Any) -> str | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # an id given as a number in TOML or the environment, as the original allows
        if value is not None and not isinstance(value, str):
            raise BadValue(f"expected a string, got {show(value)}")
        text = value.strip() if value is not None else ""
        if not text and not self.optional:
            raise BadValue("must not be empty")
        return text or None


class Integer(Kind[int]):
    """An int within ``low..high``; numeric strings are accepted, floats and booleans are not."""

    def __init__(self, low: int, high: int | None = None) -> None:
        self.low = low
        self.high = high

    def coerce(self, value: Any) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)  # 4.0 is 4
        elif isinstance(value, str):
            try:
                number = int(value.strip(), 10)
            except ValueError:
                number = None
        if number is None or number < self.low or (self.high is not None and number > self.high):
            expected = f"in {self.low}..{self.high}" if self.high is not None else f">= {self.low}"
            raise BadValue(f"expected an integer {expected}, got {show(value)}")
        return number


class Number(Kind[float]):
    """A finite number (seconds, typically) above ``low``; numeric strings are accepted."""

    def __init__(self, low: float, *, inclusive: bool) -> None:
        self.low = low
        self.inclusive = inclusive

    def coerce(self, value: Any) -> float:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        low = self.low
        if (
            number is None
            or not math.isfinite(number)
            or not (number >= low if self.inclusive else number > low)
        ):
            raise BadValue(f"expected a number {'>=' if self.inclusive else '>'} {low:g}, got {show(value)}")
        return number


class Flag(Kind[bool]):
    """A boolean: true/false, yes/no, on/off, 1/0 in any letter case."""

    def coerce(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise BadValue(f"expected {_BOOL_HINT}, got {show(value)}")


class OneOf(Kind[Any], Generic[_E]):
    """A value of a string enum, case-insensitive; ``none_word`` spells "not set" explicitly."""

    def __init__(self, enum_type: type[_E], none_word: str | None = None) -> None:
        self.enum_type = enum_type
        self.none_word = none_word

    def coerce(self, value: Any) -> _E | None:
        if value is None or isinstance(value, self.enum_type):
            return value
        word = value.strip().lower() if isinstance(value, str) else None
        if self.none_word is not None and word == self.none_word:
            return None
        for member in self.enum_type:
            if member.value == word:
                return member
        allowed = [self.none_word] if self.none_word is not None else []
        allowed += [str(member.value) for member in self.enum_type]
        raise BadValue(f"expected one of {', '.join(allowed)}; got {show(value)}")

    def toml(self, value: Any) -> str:
        if value is None and self.none_word is not None:
            return f'"{self.none_word}"'
        return super().toml(value)


class NameMap(Kind[FrozenMap]):
    """A table of non-empty strings; keys are lowercased (the environment gives them upper-case).

    Keys other than ``allowed`` are kept (the original package accepts them) and reported as
    warnings by whoever knows what they mean.
    """

    def __init__(self, allowed: Collection[str]) -> None:
        self.allowed = tuple(allowed)

    def coerce(self, value: Any) -> FrozenMap:
        if value is None:
            return FrozenMap({})
        if not isinstance(value, Mapping):
            raise BadValue(f'expected a table such as {{ {self.allowed[0]} = "..." }}, got {show(value)}')
        result: dict[str, str] = {}
        for raw_name, target in value.items():
            name = str(raw_name).lower()  # keys set through the environment arrive upper-case
            if not isinstance(target, str) or not target.strip():
                raise BadValue(f"value of {name} must be a non-empty string, got {show(target)}")
            result[name] = target.strip()
        return FrozenMap(result)


class Pem(Kind[Any]):
    """Certificate or key material: bytes, inline text, or ``@path`` of a file (read here, once).

    Inline text is not checked for PEM markers: the original package accepts any value, and TLS
    itself tells whether the material is usable when the server starts. Messages never echo the
    value: it may be a private key.
    """

    def coerce(self, value: Any) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        if not isinstance(value, str):
            raise BadValue(f"expected inline PEM text or '@path' to a PEM file, got a {type(value).__name__}")
        text = value.strip()
        if not text.startswith("@"):
            return value.encode("utf-8") if text else None
        path = text[1:].strip()
        if not path:
            raise BadValue("'@' must be followed by the path of a PEM file")
        try:
            return read_small_file(Path(path).expanduser())
        except FileProblem as e:
            raise BadValue(str(e)) from None


# -- reading a section ------------------------------------------------------------------------------


class SectionReader:
    """Reads the settings of one section, converting each value and collecting problems.

    A setting that is absent, ``None`` (Dynaconf's ``@none``) or a blank string counts as not set,
    so an environment variable can clear a value a file set. On a problem the reader returns the
    default so reading can carry on and find the remaining problems; the caller must check
    ``problems`` before using anything it read.
    """

    def __init__(
        self, section: str, values: Mapping[str, Any], defaults: Mapping[str, Any], problems: list[str]
    ) -> None:
        self.section = section
        self._values = values
        self._defaults = defaults
        self.problems = problems

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.section}.{key}: {message} (env {env_var_name(self.section, key)})")

    def raw(self, key: str) -> Any:
        value = self._values.get(key)
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def is_set(self, key: str) -> bool:
        return self.raw(key) is not None

    def reject_unknown_keys(self) -> None:
        """A misspelt setting would otherwise be ignored silently and the default used instead."""
        for key in self._values:
            if key not in self._defaults:
                self.problem(key, f"unknown setting{suggest(key, self._defaults)}")

    def read(self, key: str, kind: Kind[Any]) -> Any:
        """The setting converted by ``kind``; the default when not set or when invalid."""
        value = self.raw(key)
        if value is None:
            return self._defaults[key]
        try:
            return kind.coerce(value)
        except BadValue as e:
            self.problem(key, str(e))
            return self._defaults[key]

    def string(self, key: str) -> Any:
        return self.read(key, Text())

    def number(self, key: str, low: float, *, inclusive: bool) -> Any:
        return self.read(key, Number(low, inclusive=inclusive))

    def pem(self, key: str) -> bytes | None:
        """PEM material given inline or as ``@path``, which must hold a ``-----BEGIN`` line."""
        data: bytes | None = self.read(key, Pem())
        if data is not None and _PEM_MARKER not in data:
            self.problem(key, "is not PEM (no '-----BEGIN' line); to read a file write '@path'")
            return None
        return data
