"""Just enough PromQL reading to know which metrics and labels an expression depends on.

Not a PromQL parser: a tokenizer and a walk over the tokens that finds the vector selectors
(``metric{label="value", ...}``) and the label lists of ``by``/``without``/``on``/``ignoring``/
``group_left``/``group_right``. Range and subquery brackets (``[5m]``, ``[$__rate_interval]``) are
skipped whole; function and aggregation names are told from metric names by the ``(`` or the
grouping keyword that follows them. Whether the expression is valid is for promtool and Prometheus
to say: the tests evaluate every expression there too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Grouping", "Matcher", "PromQLError", "Selector", "groupings", "selectors", "substitute"]

AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk"}
    | {"quantile", "limitk", "limit_ratio"}
)
GROUPING_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
OTHER_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<range>\[[^\]]*\])
    | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])
    | (?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>{}(),@])
    """,
    re.VERBOSE,
)


class PromQLError(ValueError):
    """The expression uses something this reader does not understand."""


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # =, !=, =~, !~
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...]

    def __str__(self) -> str:
        inner = ", ".join(f'{m.label}{m.op}"{m.value}"' for m in self.matchers)
        return f"{self.metric}{{{inner}}}"


@dataclass(frozen=True)
class Grouping:
    keyword: str  # by, without, on, ignoring, group_left, group_right
    labels: tuple[str, ...]


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise PromQLError(f"cannot read {expr[pos : pos + 20]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
        pos = match.end()
    return tokens


def _unquote(token: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def _walk(expr: str) -> tuple[list[Selector], list[Grouping]]:
    tokens = _tokens(expr)
    found: list[Selector] = []
    groups: list[Grouping] = []
    i = 0

    def peek(offset: int = 0) -> tuple[str, str]:
        return tokens[i + offset] if i + offset < len(tokens) else ("end", "")

    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "ident" and text.lower() in GROUPING_KEYWORDS:
            i += 1
            labels: list[str] = []
            if peek() == ("op", "("):
                i += 1
                while peek() != ("op", ")"):
                    label_kind, label = peek()
                    if label_kind == "ident":
                        labels.append(label)
                    elif (label_kind, label) != ("op", ","):
                        raise PromQLError(f"unexpected {label!r} in the label list of {text} in {expr!r}")
                    i += 1
                i += 1
            groups.append(Grouping(text.lower(), tuple(labels)))
            continue
        if kind == "ident" and text.lower() in OTHER_KEYWORDS:
            i += 1
            if text.lower() == "offset" and peek()[0] == "op" and peek()[1] in "+-":
                i += 1
            if text.lower() == "offset":
                i += 1  # the duration
            continue
        if kind == "ident" and (text in AGGREGATIONS or peek(1) == ("op", "(")):
            i += 1  # a function or aggregation; its arguments follow
            continue
        if kind == "ident" or (kind, text) == ("op", "{"):
            metric = text if kind == "ident" else ""
            i += 1 if kind == "ident" else 0
            matchers: list[Matcher] = []
            if peek() == ("op", "{"):
                i += 1
                while peek() != ("op", "}"):
                    if peek() == ("op", ","):
                        i += 1
                        continue
                    (label_kind, label), (op_kind, op), (value_kind, value) = peek(), peek(1), peek(2)
                    if label_kind != "ident" or op_kind != "op" or value_kind != "string":
                        raise PromQLError(f"cannot read the label matchers of {metric!r} in {expr!r}")
                    matchers.append(Matcher(label, op, _unquote(value)))
                    i += 3
                i += 1
            if not metric:
                names = [m.value for m in matchers if m.label == "__name__" and m.op == "="]
                if len(names) != 1:
                    raise PromQLError(f"a selector without a metric name in {expr!r}")
                metric = names[0]
                matchers = [m for m in matchers if m.label != "__name__"]
            found.append(Selector(metric, tuple(matchers)))
            continue
        if kind == "op" and text == "@":
            raise PromQLError(f"the @ modifier is not supported here: {expr!r}")
        i += 1
    return found, groups


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of an expression, in order."""
    return _walk(expr)[0]


def groupings(expr: str) -> list[Grouping]:
    """The label lists of by/without/on/ignoring/group_left/group_right, in order."""
    return _walk(expr)[1]


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana's ``$name``/``${name}`` variables; one without a value is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise PromQLError(f"no value for ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)
