"""``runs/search``'s filter and ``order_by`` strings, in MLflow's grammar, evaluated over rendered runs.

A filter is comparisons joined by ``AND``: ``metrics.loss < 0.5``, ``params.lr = '0.1'``,
``tags.`mlflow.parentRunId` = 'abc'``, ``attributes.status != 'FAILED'``, ``run_name LIKE 'sft%'``,
``attributes.run_id IN ('a', 'b')``, ``params.seed IS NULL``. Keys may be quoted with backticks or double
quotes; entity names take MLflow's aliases (``metric``, ``param``/``parameter``, ``tag``, ``attr``/``run``).
Metrics and the time attributes compare as numbers (``= != < <= > >=``); params, tags and the other
attributes as strings (``= != LIKE ILIKE IN NOT IN``), params and tags also ``IS [NOT] NULL``. Anything
else is a ``ValueError`` naming the part it could not read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

ENTITIES = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
# the time attributes (milliseconds), and MLflow's aliases of start_time
NUMERIC_ATTRIBUTES = {
    "start_time": "start_time",
    "end_time": "end_time",
    "created": "start_time",
    "Created": "start_time",
}
STRING_ATTRIBUTES = {"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"}
NUMERIC_OPS = {"=", "!=", "<", "<=", ">", ">="}
STRING_OPS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    |(?P<ident>[A-Za-z_][\w]*\.(?:`[^`]+`|"[^"]+"|[\w.:/\-]+)|[A-Za-z_]\w*)
    |(?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
    |(?P<op>!=|<>|<=|>=|=|<|>)
    |(?P<punct>[(),])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Clause:
    entity: str  # metrics, params, tags, attributes
    key: str
    op: str
    value: Any  # float, str, tuple[str, ...] (IN), None (IS NULL)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"cannot read the filter at {text[pos : pos + 30].strip()!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _unquote(text: str) -> str:
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote)


def identifier(text: str) -> tuple[str, str]:
    """(entity, key) of ``metrics.loss``, ``tags.`a b```, ``attributes.status`` or a bare attribute name."""
    entity, dot, key = text.partition(".")
    if not dot:
        entity, key = "attributes", text
    elif entity not in ENTITIES:
        if entity in STRING_ATTRIBUTES or entity in NUMERIC_ATTRIBUTES:
            raise ValueError(f"{text!r}: an attribute is named attributes.{entity}")
        raise ValueError(f"{text!r}: the entity must be metrics, params, tags or attributes, not {entity!r}")
    else:
        entity = ENTITIES[entity]
    if key[:1] in '`"' and len(key) > 1 and key[-1] == key[0]:
        key = key[1:-1]
    if not key:
        raise ValueError(f"{text!r} names no key")
    if entity == "attributes":
        key = NUMERIC_ATTRIBUTES.get(key, key)
        if key not in STRING_ATTRIBUTES and key not in NUMERIC_ATTRIBUTES:
            known = ", ".join(sorted(STRING_ATTRIBUTES | {"start_time", "end_time"}))
            raise ValueError(f"{text!r}: no attribute {key!r} (known: {known})")
    return entity, key


def parse_filter(text: str | None) -> list[Clause]:
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    clauses: list[Clause] = []
    i = 0

    def word(at: int) -> str:
        return tokens[at][1].upper() if at < len(tokens) and tokens[at][0] == "ident" else ""

    while True:
        if i >= len(tokens) or tokens[i][0] != "ident":
            raise ValueError(f"expected a key such as metrics.loss or params.lr in the filter {text!r}")
        entity, key = identifier(tokens[i][1])
        i += 1
        numeric = entity == "metrics" or (entity == "attributes" and key in NUMERIC_ATTRIBUTES)
        if word(i) == "IS":
            negated = word(i + 1) == "NOT"
            if word(i + 1 + negated) != "NULL" or entity not in ("params", "tags"):
                raise ValueError(f"IS [NOT] NULL applies to params and tags (in {text!r})")
            clauses.append(Clause(entity, key, "IS NOT NULL" if negated else "IS NULL", None))
            i += 2 + negated
        else:
            if word(i) == "NOT" and word(i + 1) == "IN":
                op, i = "NOT IN", i + 2
            elif word(i) in ("LIKE", "ILIKE", "IN"):
                op, i = word(i), i + 1
            elif i < len(tokens) and tokens[i][0] == "op":
                op, i = tokens[i][1].replace("<>", "!="), i + 1
            else:
                raise ValueError(f"expected a comparison after {entity}.{key} in {text!r}")
            allowed = NUMERIC_OPS if numeric else STRING_OPS
            if op not in allowed:
                raise ValueError(f"{entity}.{key} takes {', '.join(sorted(allowed))}, not {op}")
            value: Any
            if op in ("IN", "NOT IN"):
                if i >= len(tokens) or tokens[i][1] != "(":
                    raise ValueError(f"{op} needs a list such as ('a', 'b') in {text!r}")
                items: list[str] = []
                i += 1
                while i < len(tokens) and tokens[i][0] == "string":
                    items.append(_unquote(tokens[i][1]))
                    i += 1
                    if i < len(tokens) and tokens[i][1] == ",":
                        i += 1
                if i >= len(tokens) or tokens[i][1] != ")" or not items:
                    raise ValueError(f"{op} needs a list of quoted strings such as ('a', 'b') in {text!r}")
                value, i = tuple(items), i + 1
            elif i < len(tokens) and numeric and tokens[i][0] == "number":
                value, i = float(tokens[i][1]), i + 1
            elif i < len(tokens) and not numeric and tokens[i][0] == "string":
                value, i = _unquote(tokens[i][1]), i + 1
            else:
                wanted = "a number" if numeric else "a quoted string"
                raise ValueError(f"{entity}.{key} {op} needs {wanted} in {text!r}")
            clauses.append(Clause(entity, key, op, value))
        if i == len(tokens):
            return clauses
        if word(i) != "AND":
            raise ValueError(f"clauses are joined by AND; found {tokens[i][1]!r} in {text!r}")
        i += 1


def like(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """SQL's LIKE: ``%`` any run of characters, ``_`` one. Each ``%``-free piece has a fixed length, so the
    first is matched at the start, the last at the end and the others leftmost in between, in time linear in
    the pieces (a regex of ``.*`` would backtrack polynomially on ``%a%a%a%...``)."""
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    pieces = [
        re.compile("".join("." if c == "_" else re.escape(c) for c in piece), flags) for piece in pattern.split("%")
    ]
    if len(pieces) == 1:
        return pieces[0].fullmatch(text) is not None
    first, *middle, last = pieces
    start = first.match(text)
    if start is None:
        return False
    pos = start.end()
    for piece in middle:
        found = piece.search(text, pos)
        if found is None:
            return False
        pos = found.end()
    end = len(text) - len(pattern.rsplit("%", 1)[1])
    return end >= pos and last.fullmatch(text, end) is not None


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "IS NULL":
        return left is None
    if op == "IS NOT NULL":
        return left is not None
    if left is None:
        return False
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op in ("IN", "NOT IN"):
        return (left in right) == (op == "IN")
    if op in ("LIKE", "ILIKE"):
        return like(right, str(left), ignore_case=op == "ILIKE")
    if isinstance(left, float) and math.isnan(left):
        return False
    return bool({"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op])


def value_of(run: dict[str, Any], entity: str, key: str) -> Any:
    """The value a clause or an ordering reads from a rendered run (``records.Records.render``)."""
    if entity == "attributes":
        return run["info"].get(key)
    rows = run["data"][entity]
    found = next((r["value"] for r in rows if r["key"] == key), None)
    return found if entity != "metrics" or found is None else float(found)


def matches(run: dict[str, Any], clauses: list[Clause]) -> bool:
    return all(_compare(value_of(run, c.entity, c.key), c.op, c.value) for c in clauses)


def parse_order(order_by: list[str]) -> list[tuple[str, str, bool]]:
    """(entity, key, descending) of each ``order_by`` entry: ``metrics.loss DESC``, ``attributes.start_time``."""
    out = []
    for text in order_by:
        parts = text.strip().rsplit(None, 1)
        direction = parts[1].upper() if len(parts) == 2 and parts[1].upper() in ("ASC", "DESC") else None
        entity, key = identifier(parts[0] if direction else text.strip())
        out.append((entity, key, direction == "DESC"))
    return out


def sort_runs(runs: list[dict[str, Any]], order: list[tuple[str, str, bool]]) -> list[dict[str, Any]]:
    """By ``order`` (``parse_order``), then MLflow's default: newest first, then run id. A run without the
    value sorts last either way."""
    out = sorted(runs, key=lambda r: r["info"]["run_id"])
    out.sort(key=lambda r: r["info"].get("start_time") or 0, reverse=True)
    for entity, key, descending in reversed(order):
        present = [r for r in out if _sortable(value_of(r, entity, key))]
        present.sort(key=lambda r: value_of(r, entity, key), reverse=descending)
        out = present + [r for r in out if not _sortable(value_of(r, entity, key))]
    return out


def _sortable(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))
