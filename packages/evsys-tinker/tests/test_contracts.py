"""evsys-tinker passes core's contract suites (algorithms run on the emulator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from conftest import CHAT_ROWS, EMULATOR, MODEL, PREFERENCE_ROWS, PROMPT_ROWS, TASK_ROWS

from evsys_sdk.testing import AlgorithmContract, BackendContract, ContractRun, InferenceClientContract
from evsys_tinker.testing import FakeTinker


class _OnEmulator(AlgorithmContract):
    backend_kind = "tinker"
    backend_params: ClassVar[dict[str, Any]] = EMULATOR
    model: ClassVar[dict[str, Any]] = MODEL
    # A drawn config may make one step outlast any budget (sampling a huge max_tokens): the process
    # executor kills it.
    property_executor = "process"

    def artifact_exists(self, uri: str) -> bool:
        """Tinker checkpoints are tinker:// URIs: they must resolve in the emulator's storage."""
        import os

        return FakeTinker(os.environ["EVSYS_TINKER_EMULATOR_DIR"]).exists(uri)

    def test_tinker_artifact_layout(self, contract_run: ContractRun) -> None:
        artifacts = contract_run.result.artifacts
        assert artifacts["final_checkpoint"] == artifacts["checkpoint-final"]
        assert "/sampler_weights/" in artifacts["final_checkpoint"]
        assert "/weights/" in artifacts["state-final"]
        assert Path(artifacts["run_dir"], "checkpoints.jsonl").exists()


class TestSFTContract(_OnEmulator):
    algorithm_kind = "sft"
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2}
    rows: ClassVar[list[dict[str, Any]]] = CHAT_ROWS


class TestSDFTContract(_OnEmulator):
    algorithm_kind = "sdft"
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2, "max_tokens": 8}
    rows: ClassVar[list[dict[str, Any]]] = PROMPT_ROWS


class TestRLContract(_OnEmulator):
    algorithm_kind = "rl"
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2, "num_samples": 2, "max_tokens": 8}
    rows: ClassVar[list[dict[str, Any]]] = TASK_ROWS


class TestDPOContract(_OnEmulator):
    algorithm_kind = "dpo"
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2}
    rows: ClassVar[list[dict[str, Any]]] = PREFERENCE_ROWS


class TestDistillContract(_OnEmulator):
    algorithm_kind = "distill"
    params: ClassVar[dict[str, Any]] = {"max_steps": 2, "batch_size": 2, "teacher": "Qwen/Qwen3-8B", "lmbda": 0.5}
    rows: ClassVar[list[dict[str, Any]]] = CHAT_ROWS


class TestBackendContract(BackendContract):
    backend_kind = "tinker"
    params: ClassVar[dict[str, Any]] = EMULATOR


class TestInferenceContract(InferenceClientContract):
    inference_kind = "tinker"
    params: ClassVar[dict[str, Any]] = {"model_name": MODEL["name"], **EMULATOR}
