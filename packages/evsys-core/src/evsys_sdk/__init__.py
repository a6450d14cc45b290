"""evsys: declarative, plugin-based LLM training experiments.

Names resolve lazily (PEP 562): ``import evsys_sdk`` loads neither pydantic nor any plugin, and the
first registry look-up discovers plugins.
"""

from __future__ import annotations

import importlib
from typing import Any

from evsys_sdk.base.lazy import plugin_getattr

__version__ = "0.1.0"

_EXPORTS: dict[str, tuple[str, ...]] = {
    "evsys_sdk.spec.config": (
        "ExperimentConfig",
        "RunConfig",
        "AlgorithmConfig",
        "DataConfig",
        "ModelConfig",
        "BackendConfig",
        "EvalConfig",
        "DataStoreSpec",
        "LogStoreSpec",
        "MetricSpec",
        "VerifierSpec",
        "TransformSpec",
        "InferenceSpec",
        "CallbackSpec",
        "ExecutorSpec",
        "MatrixSpec",
        "ContinualConfig",
        "BenchmarkSpec",
        "StrictModel",
        "Sweep",
    ),
    "evsys_sdk.spec.protocols": (
        "Algorithm",
        "Backend",
        "DataStore",
        "LogStore",
        "Metric",
        "Verifier",
        "Transform",
        "InferenceClient",
        "RunContext",
        "RunResult",
        "VerificationResult",
        "InferenceFactory",
    ),
    "evsys_sdk.loading.yaml_loader": ("load_yaml", "dump_yaml"),
    "evsys_sdk.cli.validate": ("validate_yaml",),
    "evsys_sdk.plugins.registry": (
        "Registry",
        "schema_for",
        "resolve_algorithm",
        "register_default_inference_factory",
        "get_default_inference_factory",
        *(
            f"{verb}_{kind}"
            for kind in (
                "algorithm",
                "backend",
                "verifier",
                "metric",
                "transform",
                "data_store",
                "log_store",
                "inference",
                "callback",
                "executor",
                "proposer",
            )
            for verb in ("register", "get")
        ),
        "list_algorithms",
        "list_backends",
        "list_verifiers",
        "list_metrics",
        "list_transforms",
        "list_data_stores",
        "list_log_stores",
        "list_inferences",
        "list_callbacks",
        "list_executors",
        "list_proposers",
    ),
    "evsys_sdk.run.runner": ("run_experiment",),
    "evsys_sdk.orchestration.experiment": ("Experiment",),
    "evsys_sdk.spec.results": ("ExperimentResult", "ArmResult", "EvalResult"),
    "evsys_sdk.eval.benchmark": ("Benchmark", "BenchmarkScore", "BenchmarkTaskResult"),
    "evsys_sdk.tracking.workspace": ("Workspace", "MaterializedDataset"),
    "evsys_sdk.tracking.store": ("TrackingStore", "LocalStore"),
    "evsys_sdk.tracking.records": ("open_store", "find_experiment"),
    "evsys_sdk.spec.sweep": ("expand_runs",),
    "evsys_sdk.search": ("evolve", "SearchResult", "Candidate", "SearchConfig", "Proposal", "Proposer"),
    "evsys_sdk.plugins.hookspecs": ("hookimpl", "hookspec"),
    "evsys_sdk.base.errors": ("EvsysError", "ConfigError", "PluginError", "UnknownKindError"),
    "evsys_sdk.base.logger": ("configure_logger", "get_logger", "set_level"),
    "evsys_sdk.spec.data_types": (
        "TargetFormat",
        "ChatMessagesRow",
        "HarborTask",
        "PromptExample",
        "PreferenceRow",
        "InProcessVerifier",
        "E2BVerifier",
        "LLMJudgeVerifier",
        "VerifierPayload",
        "text_block",
        "image_url_block",
        "image_base64_block",
        "block_to_image_src",
        "has_images",
        "detect_format",
        "from_dict",
        "to_dict",
        "iter_jsonl",
        "parse_rows",
    ),
}

# Names that live in plugin packages: resolved when installed, an install hint otherwise.
_PLUGIN_EXPORTS = ("DashboardClient", "ExperimentRun", "DashboardClientError", "EvsysAuthError")

_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted([*_WHERE, *_PLUGIN_EXPORTS, "__version__"])
_from_plugin = plugin_getattr(__name__, "evsys_dashboard", "evsys-dashboard", _PLUGIN_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        return _from_plugin(name)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
