"""The real tinker SDK, over HTTP, against a loopback fake of the service: catches SDK upgrades that
break evsys-tinker (ADAPTERS.md 1.11). Pinned to the wire format of tinker 0.38."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import CHAT_ROWS, MODEL, TASK_ROWS
from tinker_http_fake import serve

from evsys_sdk.runner import run_experiment
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


def test_a_4xx_fails_the_run_with_the_service_message(tmp_path: Path, service: Any) -> None:
    url, state = service
    state.fail["create_model"] = (400, "base model not-a-model is not supported")
    result = _run(tmp_path, url, "sft", {"max_steps": 1}, CHAT_ROWS)
    assert result.status == "failed"
    assert "HTTP 400" in (result.error or "") and "not supported" in (result.error or "")
