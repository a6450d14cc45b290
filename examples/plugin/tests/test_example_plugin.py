"""The example plugin passes core's algorithm contract and is found through its entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.run.runner import run_experiment
from evsys_sdk.testing import AlgorithmContract

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "tinker", "anthropic", "openai")


class TestConstantLrToy(AlgorithmContract):
    algorithm_kind = "constant_lr_toy"
    params: ClassVar[dict[str, Any]] = {"learning_rate": 0.2, "steps": 5}


def evsys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evsys_sdk.cli", *args], capture_output=True, text=True, timeout=120)


def test_evsys_lists_the_plugin_and_its_algorithm() -> None:
    listed = evsys("list", "--kind", "algorithms")
    assert listed.returncode == 0, listed.stderr
    assert "  - constant_lr_toy\n" in listed.stdout
    plugins = evsys("plugins")
    assert plugins.returncode == 0, plugins.stdout
    assert "plugin-example  evsys-plugin-example 0.1.0  ok  evsys_plugin_example.hooks" in plugins.stdout


def test_hooks_module_imports_nothing_heavy() -> None:
    code = f"import sys, evsys_plugin_example.hooks; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_example_config_validates_and_runs(tmp_path: Path) -> None:
    validated = evsys("validate", "--deep", str(CONFIG))
    assert validated.returncode == 0, validated.stderr
    config = load_yaml(CONFIG)
    config.output_dir = str(tmp_path)
    [result] = run_experiment(config)
    assert result.status == "completed", result.error
    assert result.metrics["train/final_loss"] == pytest.approx(2.0 * 0.8**10)
