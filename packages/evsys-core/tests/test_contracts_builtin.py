"""Core's built-ins pass the contract suites every plugin subclasses, and the suites catch broken ones."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import Field, model_validator

from evsys_sdk.plugins.host import PluginHost
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.protocols import VerificationResult
from evsys_sdk.testing import (
    AlgorithmContract,
    BackendContract,
    DataStoreContract,
    ExecutorContract,
    InferenceClientContract,
    LogStoreContract,
    MetricContract,
    TransformContract,
    VerifierContract,
)

# --- algorithms ---------------------------------------------------------------------------------------


class TestMockSFT(AlgorithmContract):
    algorithm_kind = "mock_sft"
    params: ClassVar[dict[str, Any]] = {"num_epochs": 2, "batch_size": 4, "save_at_fractions": [0.5, 1.0]}


class TestSFTFamilyOnMock(AlgorithmContract):
    algorithm_kind = "sft"  # resolved to mock_sft by backend_kind
    params: ClassVar[dict[str, Any]] = {"max_steps": 3}


class TestMockSDFT(AlgorithmContract):
    algorithm_kind = "mock_sdft"
    params: ClassVar[dict[str, Any]] = {"max_steps": 3, "topk": 5}


class TestMockRL(AlgorithmContract):
    algorithm_kind = "mock_rl"
    params: ClassVar[dict[str, Any]] = {"num_steps": 4, "save_every": 2, "verifier_kind": "format_only"}


PREFERENCE_ROWS = [{"prompt": f"What is {i} + 2?", "chosen": str(i + 2), "rejected": str(i + 3)} for i in range(8)]


class TestDPOFamilyOnMock(AlgorithmContract):
    algorithm_kind = "dpo"
    rows = PREFERENCE_ROWS
    params: ClassVar[dict[str, Any]] = {"max_steps": 3, "beta": 0.2, "loss_type": ["sigmoid", "sft"]}


class TestDistillFamilyOnMock(AlgorithmContract):
    algorithm_kind = "distill"
    params: ClassVar[dict[str, Any]] = {"max_steps": 3, "teacher": "mock-teacher", "lmbda": 0.5}


class TestCombo(AlgorithmContract):
    algorithm_kind = "combo"
    params: ClassVar[dict[str, Any]] = {
        "phases": [
            {"kind": "mock_sft", "config": {"max_steps": 2}},
            {"kind": "mock_sft", "config": {"max_steps": 3}, "name": "second"},
        ]
    }


# --- backend, inference -------------------------------------------------------------------------------


class TestMockBackend(BackendContract):
    backend_kind = "mock"


class TestMockBackendTrainsRL(BackendContract):
    backend_kind = "mock"
    algorithm_kind = "rl"
    algorithm_params: ClassVar[dict[str, Any]] = {"num_steps": 2}


class TestMockInference(InferenceClientContract):
    inference_kind = "mock"


class TestMockInferenceTemplate(InferenceClientContract):
    inference_kind = "mock"
    params: ClassVar[dict[str, Any]] = {"template": "Q: {prompt}\nA: four. END more"}
    stop = "END"


# --- metrics ------------------------------------------------------------------------------------------


class TestPassRate(MetricContract):
    metric_kind = "pass_rate"
    cases = [
        ({"task_rewards": [[1.0, 0.0], [1.0, 1.0]]}, 0.75),
        ({"task_rewards": [[0.5], []]}, 0.0),
        ({"task_rewards": []}, 0.0),
    ]


class TestPassAt3(MetricContract):
    metric_kind = "pass@3"
    cases = [
        ({"task_rewards": [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]]}, 0.5),
        (
            {
                "predictions": [{"samples": ["a", "b", "c"]}, {"answer": "x"}],
                "targets": [{"answer": "c"}, {"answer": "y"}],
            },
            0.5,
        ),
    ]


class TestPassAtK(MetricContract):
    metric_kind = "pass_at_k"
    params: ClassVar[dict[str, Any]] = {"k": 2}
    cases = [({"task_rewards": [[0.0, 1.0], [0.0, 0.0, 1.0]]}, 0.5)]


class TestPassHat3(MetricContract):
    metric_kind = "pass^3"
    cases = [({"task_rewards": [[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]}, 0.5)]


class TestExactMatch(MetricContract):
    metric_kind = "exact_match"
    cases = [
        ({"predictions": [{"answer": "x"}, {"answer": "y"}], "targets": [{"answer": "x"}, {"answer": "z"}]}, 0.5),
        ({"predictions": [], "targets": []}, 0.0),
    ]


class TestToolkitMatch(MetricContract):
    metric_kind = "toolkit_match"
    cases = [
        (
            {
                "predictions": [{"answer": "github_create_issue"}, {"answer": "slack_send"}],
                "targets": [{"toolkit": "github"}, {"toolkit": "github"}],
            },
            0.5,
        )
    ]


class TestMeanReward(MetricContract):
    metric_kind = "mean_reward"
    cases = [
        ({"task_rewards": [[1.0, 0.0], [0.5]]}, 0.5),
        ({"predictions": [{"reward": 1.0}, {"reward": 0.0}, {}]}, 1 / 3),
    ]


# --- verifier, transforms -----------------------------------------------------------------------------


class TestFormatOnly(VerifierContract):
    verifier_kind = "format_only"
    cases = [
        ("q", "<think>a</think>\n<answer>b</answer>", {}, 1.0),
        ("q", "<answer>b</answer>", {"answer": "b"}, 0.5),
        ("q", "<think>unclosed <answer>b", {}, 0.0),
        ("q", "", {}, 0.0),
    ]


class TestFormatOnlyWeighted(VerifierContract):
    verifier_kind = "format_only"
    params: ClassVar[dict[str, Any]] = {"has_think_reward": 0.25, "has_answer_reward": 0.75}
    cases = [("q", "<think>t</think>", {}, 0.25), ("q", "<think>t</think><answer>a</answer>", {}, 1.0)]


class TestIdentity(TransformContract):
    transform_kind = "identity"
    rows_in: ClassVar[list[dict[str, Any]]] = [{"query": "a", "n": 1}, {"query": "b", "nested": {"x": [1]}}]
    rows_out = rows_in


class TestJsonlToChat(TransformContract):
    transform_kind = "jsonl_to_chat"
    params: ClassVar[dict[str, Any]] = {
        "system_prompt": "Be brief.",
        "user_template": "{query}",
        "assistant_template": "{answer}",
    }
    rows_in: ClassVar[list[dict[str, Any]]] = [{"query": "2+2?", "answer": "4"}, {"query": "1+1?", "answer": "2"}]
    rows_out: ClassVar[list[dict[str, Any]]] = [
        {
            **row,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": row["query"]},
                {"role": "assistant", "content": row["answer"]},
            ],
        }
        for row in rows_in
    ]


# --- stores -------------------------------------------------------------------------------------------


class TestLocalDataStore(DataStoreContract):
    data_store_kind = "local"

    def params(self, tmp_path: Path) -> dict[str, Any]:
        return {"root": str(tmp_path / "store")}


class TestInMemoryDataStore(DataStoreContract):
    data_store_kind = "in_memory"


class TestJSONLLogStore(LogStoreContract):
    log_store_kind = "jsonl"

    def params(self, tmp_path: Path) -> dict[str, Any]:
        return {"log_dir": str(tmp_path / "logs")}


class TestNullLogStore(LogStoreContract):
    log_store_kind = "null"
    raises_after_close = False  # it holds nothing to close and discards every call


class TestMultiplexLogStore(LogStoreContract):
    log_store_kind = "multiplex"

    def params(self, tmp_path: Path) -> dict[str, Any]:
        return {"children": [{"kind": "jsonl", "params": {"log_dir": str(tmp_path / "logs")}}, {"kind": "null"}]}


# --- executors ----------------------------------------------------------------------------------------


class TestSequentialExecutor(ExecutorContract):
    executor_kind = "sequential"


class TestProcessExecutor(ExecutorContract):
    executor_kind = "process"
    params: ClassVar[dict[str, Any]] = {"max_workers": 2, "kill_grace_seconds": 1.0}


# --- the suites catch broken extensions ---------------------------------------------------------------
# The contract methods are plain functions: calling them on a suite pointed at a broken class must fail.


class _MutatingTransform:
    name: ClassVar[str] = "mutating"

    class Config(StrictModel):
        pass

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            row["seen"] = True
            yield row


class _LenTransform(_MutatingTransform):
    """Calls len() on its input: breaks on generators."""

    name: ClassVar[str] = "len_transform"

    def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        return iter([{"n": len(rows)}])  # type: ignore[arg-type]


class _LooseVerifier:
    """No Config, and a reward outside [0, 1]."""

    name: ClassVar[str] = "loose"

    def verify(self, *, prompt: str, completion: str, target: dict[str, Any]) -> VerificationResult:
        return VerificationResult(reward=2.0)


def test_transform_suite_catches_mutation_and_len(plugin_host: PluginHost, tmp_path: Path) -> None:
    transforms = plugin_host.registries["transform"]
    transforms.add(_MutatingTransform)
    transforms.add(_LenTransform)

    class Mutating(TransformContract):
        transform_kind = "mutating"
        rows_in: ClassVar[list[dict[str, Any]]] = [{"a": 1}]
        rows_out: ClassVar[list[dict[str, Any]]] = [{"a": 1, "seen": True}]

    Mutating().test_maps_rows(tmp_path)  # the output is right...
    with pytest.raises(AssertionError, match="changed its input rows"):
        Mutating().test_does_not_mutate_input(tmp_path)  # ...but the input was changed

    class Len(TransformContract):
        transform_kind = "len_transform"
        rows_in: ClassVar[list[dict[str, Any]]] = [{"a": 1}]
        rows_out: ClassVar[list[dict[str, Any]]] = [{"n": 1}]

    with pytest.raises(TypeError, match="len"):
        Len().test_accepts_any_iterable(tmp_path)


def test_verifier_suite_catches_missing_config_and_range(plugin_host: PluginHost, tmp_path: Path) -> None:
    plugin_host.registries["verifier"].add(_LooseVerifier)

    class Loose(VerifierContract):
        verifier_kind = "loose"
        cases = [("q", "c", {}, 2.0)]

    with pytest.raises(AssertionError, match="pydantic `Config`"):
        Loose().test_registered_with_strict_config(tmp_path)
    with pytest.raises(AssertionError, match="outside"):
        Loose().test_cases(tmp_path)


def test_suite_without_its_name_fails_clearly(tmp_path: Path) -> None:
    class Unset(MetricContract):
        cases = [({"task_rewards": []}, 0.0)]

    with pytest.raises(pytest.fail.Exception, match="must set `metric_kind`"):
        Unset().test_cases(tmp_path)


class _OverflowingVerifier:
    """A bound forgotten: a huge (schema-valid) ``scale`` overflows in a validator, as ``save_at_fractions:
    [-1.8e308]`` once did in an arm."""

    name: ClassVar[str] = "overflowing"

    class Config(StrictModel):
        scale: float = Field(default=1.0, description="reward multiplier")

        @model_validator(mode="after")
        def _as_int(self) -> _OverflowingVerifier.Config:
            int(self.scale * 1e308 * 10)  # OverflowError for any |scale| >= 0.1797...
            return self

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def verify(self, *, prompt: str, completion: str, target: dict[str, Any]) -> VerificationResult:
        return VerificationResult(reward=1.0)


class _UndescribedVerifier(_OverflowingVerifier):
    name: ClassVar[str] = "undescribed"

    class Config(StrictModel):
        weight: float = 1.0


def test_property_suite_catches_unbounded_and_undescribed_params(plugin_host: PluginHost, tmp_path: Path) -> None:
    plugin_host.registries["verifier"].add(_OverflowingVerifier)
    plugin_host.registries["verifier"].add(_UndescribedVerifier)

    class Overflowing(VerifierContract):
        verifier_kind = "overflowing"

    class Undescribed(VerifierContract):
        verifier_kind = "undescribed"

    with pytest.raises(pytest.fail.Exception, match="raised OverflowError: cannot convert float infinity"):
        Overflowing().test_schema_params_build_or_fail_validation(tmp_path)
    Overflowing().test_params_are_described()
    with pytest.raises(AssertionError, match=r"params without a description: \['weight'\]"):
        Undescribed().test_params_are_described()
    Undescribed().test_schema_params_build_or_fail_validation(tmp_path)
