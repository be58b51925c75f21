"""Turn loosely typed configuration values into checked Python values.

Values reach us from TOML files (already typed) and from environment variables (parsed as TOML by
Dynaconf, so ``17001`` is an int but ``yes`` stays a string). Each reader here accepts the spellings
a person would reasonably write in either place and, instead of raising, records a problem naming
the setting and its environment variable, so one pass reports everything that is wrong at once.

Nothing here touches Dynaconf or ``os.environ``; ``settings.py`` feeds the values in.
"""

from __future__ import annotations

import difflib
import enum
import math
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

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
        known = list(self._defaults)
        for key in self._values:
            if key not in self._defaults:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f", did you mean '{close[0]}'?" if close else ""
                self.problem(key, f"unknown setting{hint}")

    def string(self, key: str) -> Any:
        """A string setting; the default (possibly None) when not set."""
        value = self.raw(key)
        if value is None:
            return self._defaults[key]
        if not isinstance(value, str):
            self.problem(key, f"expected a string, got {show(value)}")
            return self._defaults[key]
        return value.strip()

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if value is None:
            return bool(self._defaults[key])
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        self.problem(key, f"expected {_BOOL_HINT}, got {show(value)}")
        return bool(self._defaults[key])

    def integer(self, key: str, low: int, high: int | None = None) -> Any:
        """An int within ``low..high``; numeric strings are accepted, floats and booleans are not."""
        value = self.raw(key)
        if value is None:
            return self._defaults[key]
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str):
            try:
                number = int(value.strip(), 10)
            except ValueError:
                number = None
        if number is None or number < low or (high is not None and number > high):
            expected = f"in {low}..{high}" if high is not None else f">= {low}"
            self.problem(key, f"expected an integer {expected}, got {show(value)}")
            return self._defaults[key]
        return number

    def number(self, key: str, low: float, *, inclusive: bool) -> float:
        """A finite number (seconds, typically) above ``low``."""
        value = self.raw(key)
        if value is None:
            return float(self._defaults[key])
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        in_range = (
            number is not None and math.isfinite(number) and (number >= low if inclusive else number > low)
        )
        if number is None or not in_range:
            self.problem(key, f"expected a number {'>=' if inclusive else '>'} {low:g}, got {show(value)}")
            return float(self._defaults[key])
        return number

    def choice(self, key: str, enum_type: type[_E], *, none_word: str | None = None) -> _E | None:
        """A value of a string enum, case-insensitive; ``none_word`` spells "not set" explicitly."""
        value = self.raw(key)
        default: _E | None = self._defaults[key]
        if value is None:
            return default
        word = value.strip().lower() if isinstance(value, str) else None
        if none_word is not None and word == none_word:
            return None
        for member in enum_type:
            if member.value == word:
                return member
        allowed = [none_word] if none_word is not None else []
        allowed += [str(member.value) for member in enum_type if member.value != none_word]
        self.problem(key, f"expected one of {', '.join(allowed)}; got {show(value)}")
        return default

    def string_map(self, key: str, allowed_keys: Collection[str]) -> dict[str, str]:
        """A table of non-empty strings whose keys come from ``allowed_keys``."""
        value = self.raw(key)
        if value is None:
            return dict(self._defaults[key])
        if not isinstance(value, Mapping):
            self.problem(key, f'expected a table such as {{ trace_id = "..." }}, got {show(value)}')
            return dict(self._defaults[key])
        result: dict[str, str] = {}
        for raw_name, target in value.items():
            name = str(raw_name).lower()  # keys set through the environment arrive upper-case
            if name not in allowed_keys:
                self.problem(key, f"unknown key {show(name)}, allowed: {', '.join(sorted(allowed_keys))}")
            elif not isinstance(target, str) or not target.strip():
                self.problem(key, f"value of {name} must be a non-empty string, got {show(target)}")
            else:
                result[name] = target.strip()
        if len(set(result.values())) < len(result):
            self.problem(key, f"two keys are renamed to the same name: {show(result)}")
        return result

    def pem(self, key: str) -> bytes | None:
        """PEM material given inline or as ``@path``; never echoes the value (it may be a private key)."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(
                key, f"expected inline PEM text or '@path' to a PEM file, got a {type(value).__name__}"
            )
            return None
        if not value.startswith("@"):
            data = value.encode("utf-8")
            if _PEM_MARKER not in data:
                self.problem(
                    key, "inline value is not PEM (no '-----BEGIN' line); to read a file write '@path'"
                )
                return None
            return data
        path = Path(value[1:].strip()).expanduser()
        if not value[1:].strip():
            self.problem(key, "'@' must be followed by the path of a PEM file")
            return None
        if path.is_dir():
            self.problem(key, f"'{path}' is a directory, expected a PEM file")
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.problem(key, f"file '{path}' does not exist")
            return None
        except OSError as e:
            self.problem(key, f"cannot read file '{path}': {e.strerror or e}")
            return None
        if _PEM_MARKER not in data:
            self.problem(key, f"file '{path}' is not PEM (no '-----BEGIN' line)")
            return None
        return data
