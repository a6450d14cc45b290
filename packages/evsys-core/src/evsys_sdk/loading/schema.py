"""``evsys schema --all``: one JSON Schema of the whole config, each installed extension's params a
variant of a union discriminated on ``kind`` (for editors and for config-mutating search loops)."""

from __future__ import annotations

from typing import Any

from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.spec.families import FAMILIES

# Config-model $defs name -> registry kind.
_SPEC_KINDS = {
    "AlgorithmConfig": "algorithm",
    "BackendConfig": "backend",
    "VerifierSpec": "verifier",
    "TransformSpec": "transform",
    "MetricSpec": "metric",
    "InferenceSpec": "inference_client",
    "DataStoreSpec": "data_store",
    "LogStoreSpec": "log_store",
    "ExecutorSpec": "executor",
    "ProposerSpec": "proposer",
}


def _variant(defs: dict[str, Any], kind: str, name: str, config: Any, default_kind: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"type": "object"}
    if config is not None and hasattr(config, "model_json_schema"):
        prefix = f"{kind}.{name}."
        params = config.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
        for sub_name, sub in params.pop("$defs", {}).items():
            defs[prefix + sub_name] = sub
    variant: dict[str, Any] = {
        "type": "object",
        "title": f"{kind} {name}",
        "properties": {"kind": {"const": name}, "params": params},
        "additionalProperties": False,
    }
    if name != default_kind:
        variant["required"] = ["kind"]
    return variant


def full_schema() -> dict[str, Any]:
    from evsys_sdk.plugins.registry import registry

    schema = ExperimentConfig.model_json_schema()
    defs: dict[str, Any] = schema["$defs"]
    for def_name, kind in _SPEC_KINDS.items():
        if def_name not in defs:
            continue
        default = defs[def_name].get("properties", {}).get("kind", {}).get("default")
        variants = [_variant(defs, kind, n, getattr(cls, "Config", None), default) for n, cls in registry(kind).items()]
        if kind == "algorithm":
            variants += [_variant(defs, kind, f, cfg, None) for f, cfg in FAMILIES.items()]
        defs[def_name] = {
            "title": def_name,
            "description": f"a registered {kind} and its params",
            "oneOf": variants,
            "discriminator": {"propertyName": "kind"},
        }
    return schema
