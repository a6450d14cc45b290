"""evsys-local passes core's contract suites on the local backend with a tiny offline model."""

from __future__ import annotations

from typing import Any, ClassVar

from conftest import CHAT_ROWS, PREFERENCE_ROWS, PROMPT_ROWS, TASK_ROWS, TINY

from evsys_sdk.testing import AlgorithmContract, BackendContract, InferenceClientContract

MODEL = {"name": str(TINY)}


class TestSFTFamily(AlgorithmContract):
    algorithm_kind = "sft"
    backend_kind = "local"
    model: ClassVar[dict[str, Any]] = MODEL
    params: ClassVar[dict[str, Any]] = {"max_steps": 3, "batch_size": 4, "learning_rate": 1e-3}


class TestRLFamily(AlgorithmContract):
    algorithm_kind = "rl"
    backend_kind = "local"
    model: ClassVar[dict[str, Any]] = MODEL
    rows = TASK_ROWS
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2, "num_samples": 2, "max_tokens": 4}


class TestSDFTFamily(AlgorithmContract):
    algorithm_kind = "sdft"
    backend_kind = "local"
    model: ClassVar[dict[str, Any]] = MODEL
    rows = PROMPT_ROWS
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2, "max_tokens": 4}


class TestDPOFamily(AlgorithmContract):
    algorithm_kind = "dpo"
    backend_kind = "local"
    model: ClassVar[dict[str, Any]] = MODEL
    rows = PREFERENCE_ROWS
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2, "save_at_fractions": [0.5, 1.0]}


class TestDistillFamily(AlgorithmContract):
    algorithm_kind = "distill"
    backend_kind = "local"
    model: ClassVar[dict[str, Any]] = MODEL
    rows = CHAT_ROWS
    params: ClassVar[dict[str, Any]] = {
        "max_steps": 2,
        "batch_size": 2,
        "teacher": str(TINY),
        "max_completion_tokens": 4,
    }


class TestSFTOnChatRows(AlgorithmContract):
    algorithm_kind = "local_sft"
    backend_kind = "local"
    model: ClassVar[dict[str, Any]] = MODEL
    rows = CHAT_ROWS
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "lora_rank": 0}


class TestLocalBackend(BackendContract):
    backend_kind = "local"
    model: ClassVar[dict[str, Any]] = MODEL
    params: ClassVar[dict[str, Any]] = {"device": "cpu", "dtype": "float32"}


class TestLocalInference(InferenceClientContract):
    inference_kind = "local"
    params: ClassVar[dict[str, Any]] = {"model_name": str(TINY), "device": "cpu"}
