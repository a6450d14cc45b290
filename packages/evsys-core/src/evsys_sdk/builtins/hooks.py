"""Core's own plugin: registers the built-ins through the same hooks third-party plugins use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsys_sdk.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from evsys_sdk.plugins.registry import Registry
    from evsys_sdk.spec.config import RunConfig
    from evsys_sdk.spec.protocols import InferenceFactory

MOCK_FAMILY = {"sft": "mock_sft", "sdft": "mock_sdft", "rl": "mock_rl", "dpo": "mock_dpo", "distill": "mock_distill"}


# Every built-in by kind: name -> "module:Class", imported at its first look-up, so listing, name checks
# and the CLI build no class (and no pydantic model) they do not use.
BUILTINS: dict[str, dict[str, str]] = {
    "algorithm": {
        "mock_sft": "evsys_sdk.builtins.mock:MockSFT",
        "mock_sdft": "evsys_sdk.builtins.mock:MockSDFT",
        "mock_rl": "evsys_sdk.builtins.mock:MockRL",
        "mock_dpo": "evsys_sdk.builtins.mock:MockDPO",
        "mock_distill": "evsys_sdk.builtins.mock:MockDistill",
        "combo": "evsys_sdk.builtins.combo:ComboAlgorithm",
    },
    "backend": {"mock": "evsys_sdk.builtins.mock:MockBackend"},
    "inference_client": {"mock": "evsys_sdk.builtins.mock:MockInference"},
    "metric": {
        name: f"evsys_sdk.builtins.metrics:{cls}"
        for name, cls in (
            ("mean_reward", "MeanReward"),
            ("avg", "Avg"),
            ("pass_rate", "PassRate"),
            ("pass_at_k", "PassAtK"),
            ("pass@1", "PassAt1"),
            ("pass@3", "PassAt3"),
            ("pass^3", "PassHat3"),
            ("exact_match", "ExactMatch"),
            ("toolkit_match", "ToolkitMatch"),
        )
    },
    "verifier": {"format_only": "evsys_sdk.builtins.verifiers:FormatOnlyVerifier"},
    "transform": {
        "identity": "evsys_sdk.builtins.transforms:IdentityTransform",
        "jsonl_to_chat": "evsys_sdk.builtins.transforms:JsonlToChat",
        "on_policy_pairs": "evsys_sdk.builtins.transforms:OnPolicyPairs",
    },
    "data_store": {
        "local": "evsys_sdk.builtins.data_stores:LocalDataStore",
        "in_memory": "evsys_sdk.builtins.data_stores:InMemoryDataStore",
    },
    "log_store": {
        "jsonl": "evsys_sdk.builtins.log_stores:JSONLLogStore",
        "null": "evsys_sdk.spec.null_log_store:NullLogStore",
        "multiplex": "evsys_sdk.builtins.log_stores:MultiplexLogStore",
        "tensorboard": "evsys_sdk.builtins.log_stores:TensorBoardLogStore",
    },
    "callback": {
        "jsonl": "evsys_sdk.run.callbacks:JsonlCallback",
        "tensorboard": "evsys_sdk.run.callbacks:TensorBoardCallback",
    },
    "executor": {
        "sequential": "evsys_sdk.orchestration.executors:SequentialExecutor",
        "process": "evsys_sdk.orchestration.executors:ProcessExecutor",
    },
    "proposer": {
        "random": "evsys_sdk.search.proposers:RandomProposer",
        "mutate": "evsys_sdk.search.proposers:MutateProposer",
        "llm": "evsys_sdk.search.llm:LLMProposer",
    },
}


def _add_builtins(registry: Registry[Any]) -> None:
    for name, target in BUILTINS[registry.kind].items():
        registry.add_lazy(name, target)


@hookimpl
def evsys_register_algorithms(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl
def evsys_register_backends(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl
def evsys_register_inference_clients(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl
def evsys_register_metrics(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl
def evsys_register_verifiers(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl
def evsys_register_transforms(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl
def evsys_register_data_stores(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl
def evsys_register_log_stores(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl
def evsys_register_callbacks(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl
def evsys_register_executors(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl
def evsys_register_proposers(registry: Registry[Any]) -> None:
    _add_builtins(registry)


@hookimpl(trylast=True)
def evsys_tracking_store(name: str) -> Any:
    if name != "local":
        return None
    from evsys_sdk.tracking.store import LocalStore

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
