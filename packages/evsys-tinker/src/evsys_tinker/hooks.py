"""evsys-tinker's hooks (entry point ``tinker``). Imports only evsys_sdk: the registered classes load
at the first registry look-up and themselves import tinker only when they run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsys_sdk.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from evsys_sdk.plugins.registry import Registry
    from evsys_sdk.spec.config import RunConfig
    from evsys_sdk.spec.protocols import InferenceFactory


# Registered by import path: a module loads at its kind's first use, never at discovery.
ALGORITHMS = {
    "tinker_sft": "evsys_tinker.algorithms:TinkerSFT",
    "tinker_sdft": "evsys_tinker.algorithms:TinkerSDFT",
    "tinker_rl": "evsys_tinker.algorithms:TinkerRL",
    "tinker_dpo": "evsys_tinker.algorithms:TinkerDPO",
    "tinker_distill": "evsys_tinker.algorithms:TinkerDistill",
}


@hookimpl
def evsys_register_algorithms(registry: Registry[Any]) -> None:
    for name, target in ALGORITHMS.items():
        registry.add_lazy(name, target)


@hookimpl
def evsys_register_backends(registry: Registry[Any]) -> None:
    registry.add_lazy("tinker", "evsys_tinker.backend:TinkerBackend")


@hookimpl
def evsys_register_inference_clients(registry: Registry[Any]) -> None:
    registry.add_lazy("tinker", "evsys_tinker.inference:TinkerInference")


@hookimpl
def evsys_resolve_algorithm(kind: str, backend_kind: str) -> str | None:
    name = f"tinker_{kind}"
    return name if backend_kind == "tinker" and name in ALGORITHMS else None


@hookimpl
def evsys_default_inference_factory(run_config: RunConfig) -> InferenceFactory | None:
    if run_config.backend.kind != "tinker" and not run_config.algorithm.kind.startswith("tinker_"):
        return None
    from evsys_tinker.inference import inference_factory

    return inference_factory
