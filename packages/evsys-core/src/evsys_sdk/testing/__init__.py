"""Test helpers for evsys and its plugins: contract suites, fixtures and the network guard; for executor
plugins, ``evsys_sdk.testing.executors`` (test algorithms that crash or interrupt, and small experiments);
for proposers, ``evsys_sdk.testing.search`` (the ``synthetic`` algorithm: objectives with known optima).

Names resolve lazily (PEP 562), so importing this package pulls in neither pytest nor pydantic. The
fixtures (``plugin_host``, ``no_network``, ``mock_config``) come from the ``evsys`` pytest plugin,
which pytest loads automatically once evsys-core is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evsys_sdk.base.lazy import lazy_getattr

if TYPE_CHECKING:  # type checkers see the real classes (subclassing Any fails under mypy --strict)
    from evsys_sdk.testing.configs import DEFAULT_ROWS, MockConfigFactory, mock_experiment_config
    from evsys_sdk.testing.contracts import (
        AlgorithmContract,
        BackendContract,
        ContractRun,
        DataStoreContract,
        ExecutorContract,
        InferenceClientContract,
        LogStoreContract,
        MetricContract,
        TransformContract,
        VerifierContract,
    )
    from evsys_sdk.testing.network import NetworkAccessError, network_guard

_EXPORTS: dict[str, tuple[str, ...]] = {
    "evsys_sdk.testing.contracts": (
        "AlgorithmContract",
        "BackendContract",
        "InferenceClientContract",
        "MetricContract",
        "VerifierContract",
        "TransformContract",
        "DataStoreContract",
        "ExecutorContract",
        "LogStoreContract",
        "ContractRun",
    ),
    "evsys_sdk.testing.network": ("NetworkAccessError", "network_guard"),
    "evsys_sdk.testing.configs": ("DEFAULT_ROWS", "MockConfigFactory", "mock_experiment_config"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
# A literal list: type checkers read it to know what this package re-exports.
__all__ = [
    "DEFAULT_ROWS",
    "AlgorithmContract",
    "BackendContract",
    "ContractRun",
    "DataStoreContract",
    "ExecutorContract",
    "InferenceClientContract",
    "LogStoreContract",
    "MetricContract",
    "MockConfigFactory",
    "NetworkAccessError",
    "TransformContract",
    "VerifierContract",
    "mock_experiment_config",
    "network_guard",
]


__getattr__ = lazy_getattr(__name__, _WHERE)


def __dir__() -> list[str]:
    return __all__
