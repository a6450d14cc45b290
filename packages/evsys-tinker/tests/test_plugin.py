"""Plugin wiring: light hooks, family routing, one YAML on mock and tinker, the default inference factory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CHAT_ROWS, EMULATOR, MODEL

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.plugins.registry import get_default_inference_factory, resolve_algorithm
from evsys_sdk.run.runner import run_experiment
from evsys_sdk.spec.config import RunConfig
from evsys_sdk.testing import mock_experiment_config

HEAVY = ("tinker", "transformers", "torch", "numpy", "tokenizers")


def test_registered_modules_import_nothing_heavy() -> None:
    modules = "evsys_tinker.hooks, evsys_tinker.algorithms, evsys_tinker.backend, evsys_tinker.inference"
    code = f"import sys, {modules}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_families_route_to_tinker() -> None:
    assert [resolve_algorithm(f, "tinker") for f in ("sft", "sdft", "rl")] == ["tinker_sft", "tinker_sdft", "tinker_rl"]
    assert resolve_algorithm("sft", "mock") == "mock_sft"


def _config(tmp_path: Path, backend: str, params: dict[str, object]) -> dict[str, object]:
    return mock_experiment_config(
        tmp_path / backend,
        "sft",
        params=params,
        rows=CHAT_ROWS,
        backend=backend,
        backend_params=EMULATOR if backend == "tinker" else {},
        model=MODEL,
    )


def test_the_same_config_runs_on_mock_and_tinker(tmp_path: Path) -> None:
    shared = {"max_steps": 2, "batch_size": 2, "learning_rate": 2e-4, "lora_rank": 4, "save_at_fractions": [0.5, 1.0]}
    for backend in ("mock", "tinker"):
        [result] = run_experiment(_config(tmp_path, backend, shared))
        assert result.status == "completed", (backend, result.error)
        assert {"final_checkpoint", "state-final"} <= set(result.artifacts)
        assert "train/final_loss" in result.metrics


def test_a_tinker_only_param_on_mock_names_the_backend(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"supervise.*backends that do: tinker \(tinker_sft\)"):
        run_experiment(_config(tmp_path, "mock", {"supervise": "last_assistant"}))


def test_default_inference_factory_serves_the_final_checkpoint(tmp_path: Path) -> None:
    config = _config(tmp_path, "tinker", {"max_steps": 2, "batch_size": 2})
    [result] = run_experiment(config)
    assert result.status == "completed", result.error
    run_config = RunConfig.model_validate(config["run"])
    factory = get_default_inference_factory(run_config)
    assert factory is not None
    client = factory(result, run_config)
    assert client.config.checkpoint_path == result.artifacts["checkpoint-final"]
    texts = client.generate_batch(["What is 1 + 2?", "What is 3 + 2?"], max_tokens=8)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert texts[0] == client.generate(prompt="What is 1 + 2?", max_tokens=8)  # greedy: same prompt, same text


def test_evsys_lists_the_plugin() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "evsys_sdk.cli", "plugins"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "tinker  evsys-tinker 0.1.0  ok  evsys_tinker.hooks" in proc.stdout


def test_the_example_config_runs_on_the_emulator(tmp_path: Path) -> None:
    from evsys_sdk.loading.yaml_loader import load_yaml

    root = Path(__file__).resolve().parents[3]
    config = load_yaml(root / "examples" / "tinker" / "config.yaml")
    config.output_dir = str(tmp_path)
    config.data_store.params["root"] = str(root / "examples" / "tinker")
    [result] = run_experiment(config)
    assert result.status == "completed", result.error
    assert result.artifacts["final_checkpoint"].startswith("tinker://")
