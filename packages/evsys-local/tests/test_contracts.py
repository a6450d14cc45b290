"""evsys-local passes core's contract suites on the local backend with a tiny offline model."""

from __future__ import annotations

from typing import Any, ClassVar

from conftest import CHAT_ROWS, PREFERENCE_ROWS, PROMPT_ROWS, TASK_ROWS, TINY

from evsys_sdk.testing import AlgorithmContract, BackendContract, InferenceClientContract

MODEL = {"name": str(TINY)}


class _OnTinyModel(AlgorithmContract):
    backend_kind = "local"
    model: ClassVar[dict[str, Any]] = MODEL
    # A drawn config may make one step outlast any budget (a huge max_tokens): the process executor kills
    # it; each drawn run starts a worker that imports torch, so draw a few.
    property_executor = "process"
    property_runs = 3


class TestSFTFamily(_OnTinyModel):
    algorithm_kind = "sft"
    params: ClassVar[dict[str, Any]] = {"max_steps": 3, "batch_size": 4, "learning_rate": 1e-3}


class TestRLFamily(_OnTinyModel):
    algorithm_kind = "rl"
    rows = TASK_ROWS
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2, "num_samples": 2, "max_tokens": 4}


class TestSDFTFamily(_OnTinyModel):
    algorithm_kind = "sdft"
    rows = PROMPT_ROWS
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2, "max_tokens": 4}


class TestDPOFamily(_OnTinyModel):
    algorithm_kind = "dpo"
    rows = PREFERENCE_ROWS
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2, "save_at_fractions": [0.5, 1.0]}


class TestDistillFamily(_OnTinyModel):
    algorithm_kind = "distill"
    rows = CHAT_ROWS
    params: ClassVar[dict[str, Any]] = {
        "max_steps": 2,
        "batch_size": 2,
        "teacher": str(TINY),
        "max_completion_tokens": 4,
    }


class TestSFTOnChatRows(_OnTinyModel):
    algorithm_kind = "local_sft"
    rows = CHAT_ROWS
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "lora_rank": 0}


class TestLocalBackend(BackendContract):
    backend_kind = "local"
    model: ClassVar[dict[str, Any]] = MODEL
    params: ClassVar[dict[str, Any]] = {"device": "cpu", "dtype": "float32"}


class TestLocalInference(InferenceClientContract):
    inference_kind = "local"
    params: ClassVar[dict[str, Any]] = {"model_name": str(TINY), "device": "cpu"}
