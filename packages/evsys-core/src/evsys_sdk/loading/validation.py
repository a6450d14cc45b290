"""Deep validation: every ``{kind, params}`` block of a config against the installed extensions' schemas,
as located problems (``evsys_sdk.spec.problems``)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.config import DataConfig, ExperimentConfig, MatrixSpec, RunConfig, _KindSpec
from evsys_sdk.spec.families import FAMILIES
from evsys_sdk.spec.problems import Path, Problem, pydantic_problems


def _params_key(params: dict[str, Any]) -> str:
    """A cache key for a params block: thousands of matrix arms share a handful of distinct blocks."""
    return (
        repr(sorted(params.items()))
        if all(isinstance(v, int | float | str | bool) for v in params.values())
        else json.dumps(params, sort_keys=True, default=str)
    )


def _kind_spec_problems(
    kind: str, spec: _KindSpec, path: Path, cache: dict[str, list[Problem]], *, name: str | None = None
) -> list[Problem]:
    """Check one ``{kind, params}`` block against the registry; ``name`` overrides the looked-up name."""
    from evsys_sdk.plugins.registry import registry

    lookup = name or spec.kind
    key = f"{kind}\0{lookup}\0{_params_key(spec.params)}"
    if key not in cache:
        cache[key] = _check_params(kind, lookup, spec.params, registry(kind))
    return [((*path, *p), m) for p, m in cache[key]]


def _check_params(kind: str, name: str, params: dict[str, Any], reg: Any) -> list[Problem]:
    try:
        cls = reg.get(name)
    except (EvsysError, KeyError) as exc:
        return [(("kind",), str(exc))]
    config = getattr(cls, "Config", None)
    if config is None or not hasattr(config, "model_validate"):
        return []
    try:
        config.model_validate(params)
    except ValidationError as exc:
        return pydantic_problems(exc, config, ("params",))
    return []


def _algorithm_problems(run: RunConfig, path: Path, cache: dict[str, list[Problem]]) -> list[Problem]:
    spec = run.algorithm
    key = f"algorithm-on\0{run.backend.kind}\0{spec.kind}\0{_params_key(spec.params)}"
    if key not in cache:
        cache[key] = _check_algorithm(spec, run.backend.kind, cache)
    return [((*path, *p), m) for p, m in cache[key]]


def _check_algorithm(spec: _KindSpec, backend_kind: str, cache: dict[str, list[Problem]]) -> list[Problem]:
    """Problems of an algorithm block relative to it; a family's backend-only param names who takes it."""
    from evsys_sdk.plugins.registry import family_backends, registry, resolve_algorithm

    try:
        concrete = resolve_algorithm(spec.kind, backend_kind)
    except (EvsysError, KeyError) as exc:
        return [(("kind",), str(exc))]
    problems = _kind_spec_problems("algorithm", spec, (), cache, name=concrete)
    if spec.kind not in FAMILIES:
        return problems
    shared = set(FAMILIES[spec.kind].model_fields)
    out: list[Problem] = []
    for p, msg in problems:
        key = p[1] if len(p) > 1 and p[0] == "params" else None
        if isinstance(key, str) and msg.startswith("unknown field") and key not in shared:
            others = [
                f"{b} ({a})"
                for b, a in family_backends(spec.kind).items()
                if a != concrete and key in registry("algorithm").get(a).Config.model_fields
            ]
            if others:
                msg = (
                    f"'{key}' is not a shared param of family '{spec.kind}' and {concrete} (backend "
                    f"{backend_kind}) does not accept it; backends that do: {', '.join(others)}"
                )
        out.append((p, msg))
    return out


def _data_problems(data: DataConfig | None, path: Path, cache: dict[str, list[Problem]]) -> list[Problem]:
    if data is None:
        return []
    out: list[Problem] = []
    for i, t in enumerate(data.transforms):
        out += _kind_spec_problems("transform", t, (*path, "transforms", i), cache)
    return out


def run_problems(run: RunConfig, path: Path, cache: dict[str, list[Problem]]) -> list[Problem]:
    out = _kind_spec_problems("backend", run.backend, (*path, "backend"), cache)
    if not out:  # an algorithm family resolves by backend: only meaningful once the backend is known
        out += _algorithm_problems(run, (*path, "algorithm"), cache)
    out += _data_problems(run.data, (*path, "data"), cache)
    for i, m in enumerate(run.eval.metrics):
        out += _kind_spec_problems("metric", m, (*path, "eval", "metrics", i), cache)
    if run.eval.inference is not None:
        out += _kind_spec_problems("inference_client", run.eval.inference, (*path, "eval", "inference"), cache)
    out += _data_problems(run.eval.eval_data, (*path, "eval", "eval_data"), cache)
    return out


def deep_problems(cfg: ExperimentConfig) -> list[Problem]:
    """Every extension block checked against the installed registries, de-duplicated."""
    cache: dict[str, list[Problem]] = {}
    out = _kind_spec_problems("data_store", cfg.data_store, ("data_store",), cache)
    log_store = cfg.log_store.model_copy(update={"params": cfg.log_store.params_for(cfg.output_dir + "/<run>")})
    out += _kind_spec_problems("log_store", log_store, ("log_store",), cache)
    if cfg.log_store.kind == "multiplex":
        for i, child in enumerate(log_store.params.get("children") or []):
            if isinstance(child, dict) and isinstance(child.get("kind"), str):
                spec = _KindSpec(kind=child["kind"], params=child.get("params") or {})
                out += _kind_spec_problems("log_store", spec, ("log_store", "params", "children", i), cache)
    if cfg.run is not None:
        out += run_problems(cfg.run, ("run",), cache)
    for i, run in enumerate(cfg.runs or []):
        out += run_problems(run, ("runs", i), cache)
    if cfg._matrix is not None:
        out += _base_run_problems(cfg._matrix, cache)
    if cfg.continual is not None:
        for i, data in enumerate(cfg.continual.datasets):
            out += _data_problems(data, ("continual", "datasets", i), cache)
    for cb_index, cb in enumerate(cfg.callbacks):
        out += _kind_spec_problems("callback", cb, ("callbacks", cb_index), cache)
    out += _kind_spec_problems("executor", cfg.executor, ("executor",), cache)
    return out + _benchmark_problems(cfg.metadata.get("benchmark"), cache)


def _base_run_problems(matrix: MatrixSpec, cache: dict[str, list[Problem]]) -> list[Problem]:
    """The base run's values that every axis overrides, as written: the expanded runs never show them,
    yet a bad one is a typo. (What the runs inherit is checked in them; what an axis supplies may be
    missing from the base.)"""
    axes = [tuple(a.split(".")) for a in matrix.axes]
    out = []
    for path, msg in run_problems(matrix.base_run, (), cache):
        overridden = any(tuple(map(str, path[: len(a)])) == a for a in axes)
        if overridden and msg != "required field missing":
            out.append((("matrix", "base_run", *path), f"{msg} (in the base run, overridden by an axis)"))
    return out


def _benchmark_problems(raw: Any, cache: dict[str, list[Problem]]) -> list[Problem]:
    """``metadata.benchmark`` entries: strict keys, and every baseline model an installed inference kind."""
    from evsys_sdk.spec.config import BenchmarkSpec

    if not raw:
        return []
    entries = raw if isinstance(raw, list) else [raw]
    out: list[Problem] = []
    for i, entry in enumerate(entries):
        path: Path = ("metadata", "benchmark", i) if isinstance(raw, list) else ("metadata", "benchmark")
        if not isinstance(entry, dict):
            out.append((path, f"must be a mapping with path, id or name (got {type(entry).__name__})"))
            continue
        try:
            spec = BenchmarkSpec.model_validate(entry)
        except ValidationError as exc:
            out += pydantic_problems(exc, BenchmarkSpec, path)
            continue
        for j, model in enumerate(spec.models):
            out += _kind_spec_problems("inference_client", model, (*path, "models", j), cache)
    return out
