"""evsys-gepa's hooks (entry point ``gepa``). Imports only evsys_sdk: the algorithm's module loads at
the first registry look-up and imports gepa only when a run trains."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsys_sdk.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from evsys_sdk.plugins.registry import Registry
    from evsys_sdk.spec.config import RunConfig
    from evsys_sdk.spec.protocols import InferenceFactory

ALGORITHM = "gepa_prompt"


@hookimpl
def evsys_register_algorithms(registry: Registry[Any]) -> None:
    registry.add_lazy(ALGORITHM, "evsys_gepa.algorithm:GEPAPromptAlgorithm")


@hookimpl
def evsys_register_inference_clients(registry: Registry[Any]) -> None:
    registry.add_lazy("gepa_prompted", "evsys_gepa.inference:PromptedInference")
    registry.add_lazy("gepa_toy", "evsys_gepa.testing:ToyTaskLM")
    registry.add_lazy("gepa_toy_reflector", "evsys_gepa.testing:ToyReflectionLM")


@hookimpl
def evsys_register_verifiers(registry: Registry[Any]) -> None:
    from evsys_sdk.builtins.verifier_fns import register

    register("gepa_partial_match", "evsys_gepa.tasks:partial_match")  # an in-process fn Harbor tasks name


# tryfirst: a gepa arm is served by its prompt whatever its backend (whose own factory would serve weights)
@hookimpl(tryfirst=True)
def evsys_default_inference_factory(run_config: RunConfig) -> InferenceFactory | None:
    if run_config.algorithm.kind != ALGORITHM:
        return None
    from evsys_gepa.inference import gepa_inference_factory

    return gepa_inference_factory
