"""evsys-local's hooks: evsys imports this module at plugin discovery, so it imports only core.

Classes are imported inside the hooks and their modules import torch & co only when they run:
listing, validating and exporting schemas never load a training stack.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from evsys_sdk.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from evsys_sdk.plugins.registry import Registry
    from evsys_sdk.spec.config import RunConfig
    from evsys_sdk.spec.protocols import InferenceFactory

LOCAL_FAMILY = {
    "sft": "local_sft",
    "sdft": "local_sdft",
    "rl": "local_rl",
    "dpo": "local_dpo",
    "distill": "local_distill",
}


# Registered by import path: a module loads at its kind's first use, never at discovery.
ALGORITHMS = {
    "local_sft": "evsys_local.sft:LocalSFT",
    "local_rl": "evsys_local.rl:LocalRL",
    "local_sdft": "evsys_local.sdft:LocalSDFT",
    "local_dpo": "evsys_local.dpo:LocalDPO",
    "local_distill": "evsys_local.distill:LocalDistill",
}


@hookimpl
def evsys_register_algorithms(registry: Registry[Any]) -> None:
    for name, target in ALGORITHMS.items():
        registry.add_lazy(name, target)


@hookimpl
def evsys_register_backends(registry: Registry[Any]) -> None:
    registry.add_lazy("local", "evsys_local.backend:LocalBackend")


@hookimpl
def evsys_register_inference_clients(registry: Registry[Any]) -> None:
    registry.add_lazy("local", "evsys_local.inference:LocalInference")


@hookimpl
def evsys_resolve_algorithm(kind: str, backend_kind: str) -> str | None:
    return LOCAL_FAMILY.get(kind) if backend_kind == "local" else None


@hookimpl
def evsys_default_inference_factory(run_config: RunConfig) -> InferenceFactory | None:
    if run_config.backend.kind != "local" and not run_config.algorithm.kind.startswith("local_"):
        return None
    from evsys_local.inference import local_inference_factory

    return local_inference_factory


@hookimpl
def evsys_register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from evsys_local.cli import add_commands

    add_commands(subparsers)
