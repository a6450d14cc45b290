"""evsys-tinker's hooks (entry point ``tinker``). Imports only evsys_sdk: the registered classes load
at the first registry look-up and themselves import tinker only when they run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsys_sdk.hookspecs import hookimpl

if TYPE_CHECKING:
    from evsys_sdk.config import RunConfig
    from evsys_sdk.protocols import InferenceFactory
    from evsys_sdk.registry import Registry


@hookimpl
def evsys_register_algorithms(registry: Registry[Any]) -> None:
    from evsys_tinker.algorithms import ALGORITHMS

    for cls in ALGORITHMS:
        registry.add(cls)


@hookimpl
def evsys_register_backends(registry: Registry[Any]) -> None:
    from evsys_tinker.backend import TinkerBackend

    registry.add(TinkerBackend)


@hookimpl
def evsys_register_inference_clients(registry: Registry[Any]) -> None:
    from evsys_tinker.inference import TinkerInference

    registry.add(TinkerInference)


@hookimpl
def evsys_resolve_algorithm(kind: str, backend_kind: str) -> str | None:
    if backend_kind != "tinker":
        return None
    from evsys_tinker.algorithms import FAMILY

    return FAMILY.get(kind)


@hookimpl
def evsys_default_inference_factory(run_config: RunConfig) -> InferenceFactory | None:
    if run_config.backend.kind != "tinker" and not run_config.algorithm.kind.startswith("tinker_"):
        return None
    from evsys_tinker.inference import inference_factory

    return inference_factory
