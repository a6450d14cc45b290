"""Extension params as a search space: the field shapes every plugin shares, and the search hints a
config-mutating loop (``evsys evolve``) reads from the JSON schema.

Every param of a registered extension has a ``description`` and the bounds its domain has (fractions and
probabilities in [0, 1], temperatures >= 0, sizes >= 1); floats are finite (``StrictModel``). The
contract suites of ``evsys_sdk.testing`` check both.

A search hint says how to sample a param: under ``"search"`` in its JSON schema, one distribution in
the shape of ``search.space`` axes (``evsys_sdk.spec.search.Distribution``):

* ``{"search": {"log_uniform": [1e-6, 1e-2]}}``, ``{"search": {"uniform": [0.0, 2.0]}}``,
  ``{"search": {"int_uniform": [1, 10]}}`` (ends included), ``{"search": {"choice": [8, 16, 32]}}``;
* ``{"search": false}``: never mutate it (paths, names, ids, endpoints, keys, seeds).

A param without a hint is searched within its schema bounds (``minimum``/``maximum``, ``enum``, a
``Literal``) by ``space: auto``; a hint narrows that to where values are sensible. Declare one with
``Field(json_schema_extra=search(log_uniform=(1e-6, 1e-2)))`` or with the ``*_field`` shapes below, and
read one with ``search_hint``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

__all__ = ["FIXED", "fraction_field", "learning_rate_field", "search", "search_hint", "temperature_field"]

# ``json_schema_extra`` of a param a search loop must leave as written.
FIXED: dict[str, Any] = {"search": False}


def search(
    *,
    log_uniform: tuple[float, float] | None = None,
    uniform: tuple[float, float] | None = None,
    int_uniform: tuple[int, int] | None = None,
    choice: list[Any] | None = None,
) -> dict[str, Any]:
    """The ``json_schema_extra`` of a search hint: exactly one distribution."""
    given = {k: v for k, v in locals().items() if v is not None}
    if len(given) != 1:
        raise ValueError(f"a search hint is exactly one distribution, got {sorted(given) or 'none'}")
    ((kind, value),) = given.items()
    if kind == "choice":
        if not value:
            raise ValueError("a choice hint needs at least one value")
        return {"search": {"choice": list(value)}}
    low, high = value
    if not low < high or (kind == "log_uniform" and low <= 0):
        raise ValueError(f"{kind} needs low < high (and low > 0 for log_uniform), got [{low}, {high}]")
    return {"search": {kind: [low, high]}}


def search_hint(prop: dict[str, Any]) -> dict[str, Any] | bool | None:
    """A JSON-schema property's hint: the range or choices, False (never mutate it) or None (none)."""
    hint = prop.get("search")
    return hint if isinstance(hint, dict | bool) else None


def learning_rate_field(default: float, description: str = "optimizer learning rate") -> Any:
    """A learning rate: in (0, 1], searched log-uniform in [1e-6, 1e-2]."""
    hint = search(log_uniform=(1e-6, 1e-2))
    return Field(default=default, gt=0, le=1, description=description, json_schema_extra=hint)


def temperature_field(default: float, description: str = "sampling temperature (0 = greedy)") -> Any:
    """A sampling temperature: >= 0, searched in [0, 2]."""
    return Field(default=default, ge=0, description=description, json_schema_extra=search(uniform=(0.0, 2.0)))


def fraction_field(default: float, description: str) -> Any:
    """A fraction or probability in [0, 1]."""
    return Field(default=default, ge=0, le=1, description=description)
