"""A config problem is ``(path, message)``: ``path`` is a tuple of keys and indexes into the YAML document.
Pydantic's errors become problems here, unknown keys with a did-you-mean."""

from __future__ import annotations

import json
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from evsys_sdk.base.errors import did_you_mean

Path = tuple[str | int, ...]
Problem = tuple[Path, str]


def _unwrap(tp: Any) -> list[Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return [t for a in get_args(tp) for t in _unwrap(a)]
    return [tp]


def fields_at(model: type[BaseModel], loc: Path) -> list[str]:
    """The field names of the model found at ``loc`` inside ``model`` (for did-you-mean)."""
    current: list[Any] = [model]
    for seg in loc:
        nxt: list[Any] = []
        for tp in current:
            for t in _unwrap(tp):
                origin = get_origin(t)
                if isinstance(t, type) and issubclass(t, BaseModel) and isinstance(seg, str) and seg in t.model_fields:
                    nxt.append(t.model_fields[seg].annotation)
                elif origin in (list, tuple) and isinstance(seg, int):
                    nxt.extend(get_args(t)[:1])
                elif origin is dict and isinstance(seg, str):
                    nxt.extend(get_args(t)[1:2])
        current = nxt
    return sorted(
        {
            f
            for tp in current
            for t in _unwrap(tp)
            if isinstance(t, type) and issubclass(t, BaseModel)
            for f in t.model_fields
        }
    )


def pydantic_problems(exc: ValidationError, model: type[BaseModel], prefix: Path = ()) -> list[Problem]:
    """One problem per pydantic error, with unknown keys getting a did-you-mean."""
    out: list[Problem] = []
    for err in exc.errors():
        loc: Path = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            allowed = fields_at(model, loc[:-1])
            msg = f"unknown field{did_you_mean(key, allowed)}" + (
                f" (allowed: {', '.join(allowed)})" if allowed and not did_you_mean(key, allowed) else ""
            )
        elif kind == "missing":
            msg = "required field missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if kind not in ("value_error", "assertion_error") and "input" in err:
                msg += f" (got {json.dumps(err['input'], default=str)[:80]})"
        out.append(((*prefix, *loc), msg))
    return out
