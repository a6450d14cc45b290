"""Hypothesis strategies drawing params from an extension's JSON schema (the one ``schema_for`` exports).

``schema_params(schema)`` draws objects the schema accepts, as far as JSON Schema says (a pydantic
validator may still refuse them); ``wild_params(schema)`` draws the schema's own keys with any JSON value,
so a test sees both what a search loop samples and what a careless one would. Covers the subset pydantic
emits: ``$ref``/``$defs``, ``anyOf``/``oneOf``/``allOf``, ``const``, ``enum``, the JSON types with their
bounds (``minimum``, ``exclusiveMaximum``, ``minLength``, ``minItems``...) and ``additionalProperties``.
Integers without a maximum are drawn mostly near their minimum, sometimes huge (``10**38``): sizes a
search may well reach. Floats are finite.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

__all__ = ["json_values", "schema_params", "schema_values", "wild_params"]

_HUGE = 10**38


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value (small and nested a little)."""
    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6,
    )


def _integers(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    if "exclusiveMinimum" in schema:
        low = math.floor(schema["exclusiveMinimum"]) + 1
    if "exclusiveMaximum" in schema:
        high = math.ceil(schema["exclusiveMaximum"]) - 1
    low = None if low is None else math.ceil(low)
    high = None if high is None else math.floor(high)
    if low is not None and high is not None:
        return st.integers(low, high) if low <= high else st.nothing()
    if low is not None:
        return st.integers(low, low + 64) | st.sampled_from([low, low + 10**6, low + _HUGE])
    if high is not None:
        return st.integers(high - 64, high) | st.just(high - _HUGE)
    return st.integers(-64, 64) | st.sampled_from([-_HUGE, _HUGE])


def _floats(schema: dict[str, Any]) -> st.SearchStrategy[float]:
    kwargs: dict[str, Any] = {"allow_nan": False, "allow_infinity": False}
    if "minimum" in schema:
        kwargs["min_value"] = float(schema["minimum"])
    if "maximum" in schema:
        kwargs["max_value"] = float(schema["maximum"])
    if "exclusiveMinimum" in schema:
        kwargs.update(min_value=float(schema["exclusiveMinimum"]), exclude_min=True)
    if "exclusiveMaximum" in schema:
        kwargs.update(max_value=float(schema["exclusiveMaximum"]), exclude_max=True)
    return st.floats(**kwargs)


def _within(value: float, schema: dict[str, Any]) -> bool:
    """Whether ``value`` meets the schema's numeric bounds (an integer drawn for a ``number``)."""
    low, high = float(schema.get("minimum", -math.inf)), float(schema.get("maximum", math.inf))
    above, below = float(schema.get("exclusiveMinimum", -math.inf)), float(schema.get("exclusiveMaximum", math.inf))
    return low <= value <= high and above < value < below


def _object(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    fixed = st.fixed_dictionaries(
        {k: schema_values(v, defs) for k, v in props.items() if k in required},
        optional={k: schema_values(v, defs) for k, v in props.items() if k not in required},
    )
    extra = schema.get("additionalProperties", not props)
    if extra is False:
        return fixed
    values = json_values() if extra is True else schema_values(extra, defs)
    more = st.dictionaries(st.text(max_size=12).filter(lambda k: k not in props), values, max_size=3)
    return st.tuples(fixed, more).map(lambda pair: {**pair[1], **pair[0]})


def schema_values(schema: dict[str, Any] | bool, defs: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values of one (sub)schema; ``defs`` resolves ``#/$defs/<name>`` references."""
    defs = defs or {}
    if schema is True or schema == {}:
        return json_values()
    if schema is False:
        return st.nothing()
    assert isinstance(schema, dict)
    if "$ref" in schema:
        return st.deferred(lambda: schema_values(defs[schema["$ref"].rsplit("/", 1)[-1]], defs))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([schema_values(s, defs) for s in schema[key]])
    if "allOf" in schema:
        return schema_values(schema["allOf"][0], defs)
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([schema_values({**schema, "type": t}, defs) for t in kind])
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return _integers(schema)
    if kind == "number":
        return _floats(schema) | _integers(schema).filter(lambda n: _within(float(n), schema))
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 24), 24))
    if kind == "array":
        items = schema_values(schema.get("items", True), defs)
        low = schema.get("minItems", 0)
        return st.lists(items, min_size=low, max_size=max(low, min(schema.get("maxItems", 4), 4)))
    if kind == "object" or "properties" in schema:
        return _object(schema, defs)
    return json_values()


def schema_params(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Param objects the extension's schema accepts."""
    return schema_values(schema, schema.get("$defs", {}))


def wild_params(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The schema's own keys, each with any JSON value (mostly ones the schema refuses)."""
    keys = list(schema.get("properties", {}))
    if not keys:
        return st.dictionaries(st.text(max_size=8), json_values(), max_size=2)
    return st.dictionaries(st.sampled_from(keys), json_values(), max_size=len(keys))
