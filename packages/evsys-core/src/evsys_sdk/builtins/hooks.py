"""Core's own plugin: registers the built-ins through the same hooks third-party plugins use."""

from __future__ import annotations

from typing import Any

from evsys_sdk.config import RunConfig
from evsys_sdk.hookspecs import hookimpl
from evsys_sdk.protocols import InferenceFactory
from evsys_sdk.registry import Registry

MOCK_FAMILY = {"sft": "mock_sft", "sdft": "mock_sdft", "rl": "mock_rl", "dpo": "mock_dpo", "distill": "mock_distill"}


@hookimpl
def evsys_register_algorithms(registry: Registry[Any]) -> None:
    from evsys_sdk.builtins.combo import ComboAlgorithm
    from evsys_sdk.builtins.mock import MockDistill, MockDPO, MockRL, MockSDFT, MockSFT

    for cls in (MockSFT, MockSDFT, MockRL, MockDPO, MockDistill, ComboAlgorithm):
        registry.add(cls)


@hookimpl
def evsys_register_backends(registry: Registry[Any]) -> None:
    from evsys_sdk.builtins.mock import MockBackend

    registry.add(MockBackend)


@hookimpl
def evsys_register_inference_clients(registry: Registry[Any]) -> None:
    from evsys_sdk.builtins.mock import MockInference

    registry.add(MockInference)


@hookimpl
def evsys_register_metrics(registry: Registry[Any]) -> None:
    from evsys_sdk.builtins.metrics import METRIC_CLASSES

    for cls in METRIC_CLASSES:
        registry.add(cls)


@hookimpl
def evsys_register_verifiers(registry: Registry[Any]) -> None:
    from evsys_sdk.builtins.verifiers import FormatOnlyVerifier

    registry.add(FormatOnlyVerifier)


@hookimpl
def evsys_register_transforms(registry: Registry[Any]) -> None:
    from evsys_sdk.builtins.transforms import TRANSFORM_CLASSES

    for cls in TRANSFORM_CLASSES:
        registry.add(cls)


@hookimpl
def evsys_register_data_stores(registry: Registry[Any]) -> None:
    from evsys_sdk.builtins.data_stores import DATA_STORE_CLASSES

    for cls in DATA_STORE_CLASSES:
        registry.add(cls)


@hookimpl
def evsys_register_log_stores(registry: Registry[Any]) -> None:
    from evsys_sdk.builtins.log_stores import LOG_STORE_CLASSES

    for cls in LOG_STORE_CLASSES:
        registry.add(cls)


@hookimpl
def evsys_register_callbacks(registry: Registry[Any]) -> None:
    from evsys_sdk.callbacks import CALLBACK_CLASSES

    for cls in CALLBACK_CLASSES:
        registry.add(cls)


@hookimpl
def evsys_register_executors(registry: Registry[Any]) -> None:
    from evsys_sdk.executors import EXECUTOR_CLASSES

    for cls in EXECUTOR_CLASSES:
        registry.add(cls)


@hookimpl
def evsys_register_proposers(registry: Registry[Any]) -> None:
    from evsys_sdk.search.proposers import PROPOSER_CLASSES

    for cls in PROPOSER_CLASSES:
        registry.add(cls)


@hookimpl(trylast=True)
def evsys_tracking_store(name: str) -> Any:
    if name != "local":
        return None
    from evsys_sdk.store import LocalStore

    return LocalStore()


@hookimpl
def evsys_resolve_algorithm(kind: str, backend_kind: str) -> str | None:
    return MOCK_FAMILY.get(kind) if backend_kind == "mock" else None


@hookimpl
def evsys_default_inference_factory(run_config: RunConfig) -> InferenceFactory | None:
    if run_config.backend.kind != "mock":
        return None
    from evsys_sdk.builtins.mock import mock_inference_factory

    return mock_inference_factory


@hookimpl
def evsys_register_commands(subparsers: Any) -> None:
    from evsys_sdk.eval.cli import add_commands
    from evsys_sdk.search import cli as search_cli

    add_commands(subparsers)
    search_cli.add_commands(subparsers)
