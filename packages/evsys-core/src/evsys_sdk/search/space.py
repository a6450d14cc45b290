"""The search space: dotted paths into the base run, each with a distribution inside its field's schema.

Paths reach the recipe, never what is measured: ``algorithm.kind``, ``algorithm.params.*``,
``backend.params.*`` and ``model.name`` may vary; data, eval, seed and the run's name may not (a loop
that can change its benchmark "improves" by changing it). Each axis is checked against the JSON schema
of the extension that owns the field: a path that does not exist (with did-you-mean), a distribution
that does not fit the field's type, an end or a choice that leaves its bounds. ``space: auto`` takes every
bounded numeric, enum and bool param of the base run's algorithm and backend, or the search hint an
extension declares in the field's ``json_schema_extra`` (``{"search": {"log_uniform": [1e-6, 1e-3]}}``,
or ``{"search": false}`` to keep a field out).

A proposal's patch is ``{path: value}``. Setting ``algorithm.kind`` switches the subtree: the params the
new kind does not accept are dropped, the ones it requires come from its schema defaults.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from evsys_sdk.base.errors import EvsysError, did_you_mean
from evsys_sdk.spec.config import RunConfig
from evsys_sdk.spec.problems import Problem
from evsys_sdk.spec.search import Distribution, SearchConfig

SEARCHABLE = ("algorithm.kind", "algorithm.params.", "backend.params.", "model.name")
_FIXED = {
    "data": "the data is what the recipe trains on",
    "eval": "the eval is what the search measures",
    "seed": "seeds are the replicates every candidate is scored on (n_repeats, base_seed)",
    "name": "candidates are named by the search",
    "tags": "tags do not change a recipe",
    "max_seconds": "every arm's time budget is budget.arm_seconds",
}


@dataclass(frozen=True)
class Axis:
    """One dimension: its path and distribution, with the operators a proposer draws from."""

    path: str
    dist: Distribution

    @property
    def kind(self) -> str:
        return self.dist.kind

    @property
    def choices(self) -> list[Any]:
        return list(self.dist.choice or [])

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return rng.choice(self.choices)
        low, high = self.dist.bounds
        if self.kind == "int_uniform":
            return rng.randint(int(low), int(high))
        if self.kind == "log_uniform":
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        return rng.uniform(low, high)

    def mutate(self, value: Any, rng: random.Random, sigma: float) -> Any:
        """A step from ``value``: Gaussian (in log space for log ranges, ``sigma`` of the range),
        reflected into the range; a neighbour move for ints and choices."""
        if self.kind == "choice":
            choices = self.choices
            if len(choices) == 1:
                return choices[0]
            i = next((j for j, c in enumerate(choices) if c == value), None)
            if i is None:
                return rng.choice(choices)
            j = i + rng.choice((-1, 1))
            return choices[j if 0 <= j < len(choices) else i - (j - i)]
        if not isinstance(value, int | float) or isinstance(value, bool):
            return self.sample(rng)  # e.g. a base run that leaves an optional field unset
        low, high = self.dist.bounds
        if self.kind == "int_uniform":
            step = rng.choice((-1, 1)) * (1 + int(abs(rng.gauss(0, sigma * (high - low)))))
            return int(_reflect(int(value) + step, low, high))
        if self.kind == "log_uniform":
            lo, hi = math.log(low), math.log(high)
            return math.exp(_reflect(math.log(value) + rng.gauss(0, sigma * (hi - lo)), lo, hi))
        return _reflect(float(value) + rng.gauss(0, sigma * (high - low)), low, high)


def _reflect(x: float, low: float, high: float) -> float:
    """``x`` folded back into [low, high] (a step past an end bounces off it)."""
    span = high - low
    x = (x - low) % (2 * span)
    return low + (x if x <= span else 2 * span - x)


class Space:
    """The axes of a search over ``base``; ``base_patch`` is the base run's own value on each axis."""

    def __init__(self, base: RunConfig, axes: list[Axis]):
        self.base = base
        self.axes = axes
        self.base_patch = {a.path: base_value(base, a.path) for a in axes}

    def __len__(self) -> int:
        return len(self.axes)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        return {a.path: a.sample(rng) for a in self.axes}

    def run_config(self, patch: dict[str, Any], name: str) -> RunConfig:
        """The base run with ``patch`` applied, named ``name``; raises ValidationError or EvsysError."""
        data = self.base.model_dump(mode="json", exclude_none=True)
        data["name"] = name
        new_kind = patch.get("algorithm.kind")
        if new_kind is not None and new_kind != self.base.algorithm.kind:
            accepted = params_model(str(new_kind), self.base.backend.kind).model_fields
            data["algorithm"] = {
                "kind": new_kind,
                "params": {k: v for k, v in data["algorithm"]["params"].items() if k in accepted},
            }
        for path, value in patch.items():
            if path == "algorithm.kind":
                continue
            if path.startswith("algorithm.params.") and new_kind is not None:
                accepted = params_model(str(new_kind), self.base.backend.kind).model_fields
                if path.removeprefix("algorithm.params.") not in accepted:
                    continue  # the switched-to kind has no such param
            _set(data, path, value)
        return RunConfig.model_validate(data)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def params_model(kind: str, backend_kind: str) -> type[BaseModel]:
    """The params model of algorithm ``kind`` (a family resolves on ``backend_kind``)."""
    from evsys_sdk.plugins.registry import registry, resolve_algorithm

    config: type[BaseModel] = registry("algorithm").get(resolve_algorithm(kind, backend_kind)).Config
    return config


def _backend_model(kind: str) -> type[BaseModel] | None:
    from evsys_sdk.plugins.registry import registry

    config = getattr(registry("backend").get(kind), "Config", None)
    return config if isinstance(config, type) and issubclass(config, BaseModel) else None


def base_value(base: RunConfig, path: str) -> Any:
    """The base run's value at ``path``, the field's default when the run leaves it out."""
    if path == "algorithm.kind":
        return base.algorithm.kind
    if path == "model.name":
        return base.model.name
    section, _, field = path.split(".", 2)
    spec = base.algorithm if section == "algorithm" else base.backend
    if field in spec.params:
        return spec.params[field]
    model = (
        params_model(base.algorithm.kind, base.backend.kind) if section == "algorithm" else _backend_model(spec.kind)
    )
    info = model.model_fields.get(field) if model is not None else None
    return info.get_default(call_default_factory=True) if info is not None else None


def _property(model: type[BaseModel], field: str) -> dict[str, Any]:
    """The field's JSON schema, with ``Optional`` unwrapped."""
    prop: dict[str, Any] = model.model_json_schema()["properties"][field]
    variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **variants[0]}
    return prop


def _fit_problems(dist: Distribution, prop: dict[str, Any]) -> list[str]:
    """Why ``dist`` does not fit the field's schema type and bounds (the ends and the choices)."""
    kind, ftype = dist.kind, prop.get("type")
    if kind == "choice":
        return []  # every choice is validated against the params model itself
    if "enum" in prop or ftype in ("string", "boolean"):
        return [f"{kind} does not fit a {ftype or 'enum'} field; use choice: [...]"]
    if ftype == "integer" and kind != "int_uniform":
        return [f"{kind} does not fit an integer field; use int_uniform: [lo, hi] or choice: [...]"]
    if ftype not in ("integer", "number"):
        return [f"{kind} does not fit a field of type {ftype or 'unknown'}; use choice: [...]"]
    low, high = dist.bounds
    out = []
    if "minimum" in prop and low < prop["minimum"]:
        out.append(f"{kind} low end {low:g} is below the field's minimum {prop['minimum']:g}")
    if "exclusiveMinimum" in prop and low <= prop["exclusiveMinimum"]:
        out.append(f"{kind} low end {low:g} must be above {prop['exclusiveMinimum']:g} (the field's bound)")
    if "maximum" in prop and high > prop["maximum"]:
        out.append(f"{kind} high end {high:g} is above the field's maximum {prop['maximum']:g}")
    if "exclusiveMaximum" in prop and high >= prop["exclusiveMaximum"]:
        out.append(f"{kind} high end {high:g} must be below {prop['exclusiveMaximum']:g} (the field's bound)")
    return out


def _value_problems(model: type[BaseModel], params: dict[str, Any], field: str, values: list[Any]) -> list[str]:
    """Pydantic's verdict on each value in the field, the base run's other params unchanged."""
    out = []
    for value in values:
        try:
            model.model_validate({**params, field: value})
        except ValidationError as exc:
            for err in exc.errors():
                if err["loc"][:1] == (field,):
                    out.append(f"value {value!r}: {err['msg']}")
    return out


def _algorithm_kinds(base: RunConfig, space: dict[str, Distribution]) -> list[str]:
    dist = space.get("algorithm.kind")
    return [str(k) for k in dist.choice or []] if dist is not None and dist.kind == "choice" else [base.algorithm.kind]


def _axis_problems(base: RunConfig, path: str, dist: Distribution, kinds: list[str]) -> list[str]:
    top = path.split(".", 1)[0]
    if top in _FIXED:
        return [f"'{path}' cannot be searched: {_FIXED[top]}"]
    if path == "algorithm.kind":
        if dist.kind != "choice":
            return ["algorithm.kind takes choice: [kinds]"]
        missing = []
        for kind in kinds:
            try:
                params_model(kind, base.backend.kind)
            except EvsysError as exc:
                missing.append(f"choice {kind!r}: {exc}")
        return missing
    if path == "model.name":
        return [] if dist.kind == "choice" else ["model.name takes choice: [names]"]
    section, _, field = path.rpartition(".")
    if section not in ("algorithm.params", "backend.params") or not field:
        return [
            f"'{path}' is not a searchable path{did_you_mean(path, _known_paths(base, kinds))}; searchable: "
            "algorithm.kind, algorithm.params.<param>, backend.params.<param>, model.name"
        ]
    if section == "backend.params":
        models = [m for m in [_backend_model(base.backend.kind)] if m is not None]
        params = dict(base.backend.params)
    else:
        models = [params_model(k, base.backend.kind) for k in kinds]
        params = dict(base.algorithm.params)
    owners = [m for m in models if field in m.model_fields]
    if not owners:
        names = sorted({f for m in models for f in m.model_fields})
        hint = did_you_mean(field, names)
        owner = f"backend '{base.backend.kind}'" if section == "backend.params" else f"algorithm {', '.join(kinds)}"
        return [f"{owner} has no param '{field}'{hint}" + ("" if hint else f" (params: {', '.join(names)})")]
    out: list[str] = []
    for model in owners:
        prop = _property(model, field)
        out += _fit_problems(dist, prop)
        values = dist.choice if dist.kind == "choice" else [_typed(dist.kind, e) for e in dist.bounds]
        kept = {k: v for k, v in params.items() if k in model.model_fields}
        out += _value_problems(model, kept, field, list(values or []))
    return list(dict.fromkeys(out))


def _typed(kind: str, end: float) -> Any:
    return int(end) if kind == "int_uniform" else end


def _known_paths(base: RunConfig, kinds: list[str]) -> list[str]:
    paths = ["algorithm.kind", "model.name"]
    for kind in kinds:
        paths += [f"algorithm.params.{f}" for f in params_model(kind, base.backend.kind).model_fields]
    backend = _backend_model(base.backend.kind)
    paths += [f"backend.params.{f}" for f in (backend.model_fields if backend else {})]
    return paths


def auto_space(base: RunConfig) -> dict[str, Distribution]:
    """Every bounded numeric, enum and bool param of the base run's algorithm and backend (or the
    field's own ``search`` hint), the seed excepted."""
    out: dict[str, Distribution] = {}
    backend = _backend_model(base.backend.kind)
    sections = [("algorithm.params", params_model(base.algorithm.kind, base.backend.kind))]
    sections += [("backend.params", backend)] if backend is not None else []
    for section, model in sections:
        for field in model.model_fields:
            if field == "seed":
                continue
            dist = _auto_axis(_property(model, field))
            if dist is not None:
                out[f"{section}.{field}"] = dist
    return out


def _auto_axis(prop: dict[str, Any]) -> Distribution | None:
    hint = prop.get("search")
    if hint is False:
        return None
    if isinstance(hint, dict):
        return Distribution.model_validate(hint)
    if "enum" in prop:
        return Distribution(choice=list(prop["enum"])) if len(prop["enum"]) > 1 else None
    ftype = prop.get("type")
    if ftype == "boolean":
        return Distribution(choice=[False, True])
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    if ftype not in ("integer", "number") or low is None or high is None or not low < high:
        return None
    if ftype == "integer":
        lo = int(prop["minimum"]) if "minimum" in prop else int(low) + 1
        hi = int(prop["maximum"]) if "maximum" in prop else int(high) - 1
        return Distribution(int_uniform=(lo, hi)) if lo < hi else None
    if "exclusiveMinimum" in prop or "exclusiveMaximum" in prop:  # stay strictly inside an open end
        pad = (high - low) * 1e-6
        low, high = low + pad * ("exclusiveMinimum" in prop), high - pad * ("exclusiveMaximum" in prop)
    if low > 0 and high / low >= 100:
        return Distribution(log_uniform=(low, high))
    return Distribution(uniform=(low, high))


def build_space(search: SearchConfig, base: RunConfig) -> tuple[Space | None, list[Problem]]:
    """The space of ``search`` over ``base``, or the located problems that keep it from being one."""
    problems: list[Problem] = []
    if search.space == "auto":
        try:
            spec = auto_space(base)
        except EvsysError as exc:
            return None, [(("search", "space"), str(exc))]
        if not spec:
            return None, [
                (
                    ("search", "space"),
                    "space: auto found no bounded numeric, enum or bool param in the "
                    f"schemas of algorithm '{base.algorithm.kind}' and backend '{base.backend.kind}'; "
                    "list the axes instead (space: {algorithm.params.<param>: {uniform: [lo, hi]}})",
                )
            ]
        where: tuple[str, ...] = ("search", "space")
    else:
        spec = search.space
        where = ()
        if not spec:
            return None, [(("search", "space"), "the space has no axis; add one, or use space: auto")]
    kinds = _algorithm_kinds(base, spec)
    for path, dist in spec.items():
        try:
            found = _axis_problems(base, path, dist, kinds)
        except EvsysError as exc:
            found = [str(exc)]
        problems += [(where or ("search", "space", path), f"{path}: {m}" if where else m) for m in found]
    if problems:
        return None, problems
    return Space(base, [Axis(path, dist) for path, dist in spec.items()]), []
