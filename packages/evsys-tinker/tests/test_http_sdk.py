"""The real tinker SDK, over HTTP, against a loopback fake of the service: catches SDK upgrades that
break evsys-tinker (the routes and payloads of tinker_http_fake). Pinned to the wire format of tinker 0.38."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import CHAT_ROWS, MODEL, PREFERENCE_ROWS, TASK_ROWS
from tinker_http_fake import serve

from evsys_sdk.run.runner import run_experiment
from evsys_sdk.testing import mock_experiment_config
from evsys_tinker.testing import FakeTinker, emulator_tokenizer


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Any:
    import tinker.lib.public_interfaces.sampling_client as sampling_module
    import tinker.lib.public_interfaces.training_client as training_module

    # The SDK fetches tokenizers from the Hugging Face Hub; offline, the emulator's stands in.
    for module in (training_module, sampling_module):
        monkeypatch.setattr(module, "_load_tokenizer_from_model_info", lambda *a, **k: emulator_tokenizer())
    monkeypatch.setenv("TINKER_API_KEY", "tml-loopback-test")
    with serve(FakeTinker(os.environ["EVSYS_TINKER_EMULATOR_DIR"])) as (url, state):
        yield url, state


def _run(
    tmp_path: Path,
    url: str,
    algorithm: str,
    params: dict[str, Any],
    rows: list[dict[str, Any]],
    model: dict[str, Any] | None = None,
) -> Any:
    config = mock_experiment_config(
        tmp_path,
        algorithm,
        params=params,
        rows=rows,
        backend="tinker",
        backend_params={"base_url": url},
        model=model or MODEL,
    )
    [result] = run_experiment(config)
    return result


def test_sft_and_resume_through_the_real_sdk(tmp_path: Path, service: Any) -> None:
    url, state = service
    result = _run(tmp_path / "a", url, "sft", {"max_steps": 2, "batch_size": 2}, CHAT_ROWS)
    assert result.status == "completed", result.error
    assert result.artifacts["checkpoint-final"].startswith("tinker://")
    assert {"create_model", "forward_backward", "optim_step", "save_weights", "save_weights_for_sampler"} <= set(
        state.requests
    )
    resumed = _run(
        tmp_path / "b",
        url,
        "sft",
        {"max_steps": 1},
        CHAT_ROWS,
        {**MODEL, "load_checkpoint_path": result.artifacts["state-final"]},
    )
    assert resumed.status == "completed", resumed.error
    assert "load_weights" in state.requests


def test_rl_samples_through_the_real_sdk(tmp_path: Path, service: Any) -> None:
    url, state = service
    params = {"max_steps": 1, "batch_size": 2, "num_samples": 2, "max_tokens": 6}
    result = _run(tmp_path, url, "rl", params, TASK_ROWS)
    assert result.status == "completed", result.error
    assert "asample" in state.requests


def test_dpo_and_distill_through_the_real_sdk(tmp_path: Path, service: Any) -> None:
    """DPO's forward (forward_only) + linearised cross_entropy and distillation's compute_logprobs with
    prompt_logprobs_last_n, over the SDK's own wire format."""
    url, state = service
    dpo = _run(tmp_path / "dpo", url, "dpo", {"max_steps": 2, "batch_size": 2}, PREFERENCE_ROWS)
    assert dpo.status == "completed", dpo.error
    assert state.requests.count("forward_backward") >= 4  # a forward and a backward per step
    first = json.loads((tmp_path / "dpo" / "contract" / "logs" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["metrics"]["dpo/reward_margin"] == pytest.approx(0.0, abs=1e-5)  # policy == reference at step 1
    assert first["metrics"]["train/loss"] == pytest.approx(math.log(2), abs=1e-4)
    params = {"max_steps": 2, "batch_size": 2, "max_completion_tokens": 6, "teacher": "Qwen/Qwen3-8B", "lmbda": 0.5}
    distill = _run(tmp_path / "distill", url, "distill", params, CHAT_ROWS)
    assert distill.status == "completed", distill.error
    assert "asample" in state.requests


def test_a_4xx_fails_the_run_with_the_service_message(tmp_path: Path, service: Any) -> None:
    url, state = service
    state.fail["create_model"] = (400, "base model not-a-model is not supported")
    result = _run(tmp_path, url, "sft", {"max_steps": 1}, CHAT_ROWS)
    assert result.status == "failed"
    assert "HTTP 400" in (result.error or "") and "not supported" in (result.error or "")
