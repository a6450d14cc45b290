"""Plugin wiring: light modules, discovery through the entry point, deep validation on every backend,
and the default inference factory serving a gepa arm whatever its backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TOY

from evsys_gepa import hooks
from evsys_sdk.plugins.hookspecs import hookimpl
from evsys_sdk.plugins.host import PluginHost, use_host
from evsys_sdk.plugins.registry import get_default_inference_factory, registry, schema_for
from evsys_sdk.spec.config import RunConfig
from evsys_sdk.spec.protocols import RunResult

HEAVY = ("gepa", "torch", "transformers", "trl", "peft", "datasets", "tinker", "anthropic", "openai", "litellm")


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_hooks_and_registered_modules_import_no_gepa() -> None:
    code = (
        "import sys, evsys_gepa.hooks, evsys_gepa.algorithm, evsys_gepa.inference, evsys_gepa.tasks, "
        "evsys_gepa.testing\n"
        "from evsys_sdk.plugins.registry import registry, schema_for\n"
        "registry('algorithm').get('gepa_prompt'); schema_for('algorithm', 'gepa_prompt')\n"
        "registry('inference_client').get('gepa_prompted')(base='gepa_toy', system_prompt='x').generate(prompt='1+1')\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    assert _run(code) == "[]"


def test_evsys_lists_the_plugin_and_its_kinds() -> None:
    plugins = subprocess.run([sys.executable, "-m", "evsys_sdk.cli", "plugins"], capture_output=True, text=True)
    assert "gepa  evsys-gepa 0.1.0  ok  evsys_gepa.hooks" in plugins.stdout, plugins.stdout + plugins.stderr
    assert registry("algorithm").source_of("gepa_prompt").startswith("evsys-gepa")
    for kind in ("gepa_prompted", "gepa_toy", "gepa_toy_reflector"):
        assert registry("inference_client").has(kind)
    schema = schema_for("algorithm", "gepa_prompt")
    assert schema["additionalProperties"] is False
    assert {"seed_prompt", "task_lm", "task_lm_config", "reflection_lm", "reflection_lm_config"} <= set(
        schema["properties"]
    )
    assert {"max_iterations", "max_metric_calls", "examples_per_eval", "seed"} <= set(schema["properties"])


class _StubBackend:
    """Stands in for evsys-local's / evsys-tinker's backend: same kind name, no model."""

    name = "stub"

    def __init__(self, **params: Any) -> None:
        self.params = params

    def prepare(self, *, model: dict[str, Any], run_dir: str) -> dict[str, Any]:
        return {"model_name": model.get("name")}

    def teardown(self, handles: dict[str, Any]) -> None:
        return None


class _WeightsServer:
    """A backend plugin whose factory answers for every arm of its backend (as local and tinker do)."""

    @staticmethod
    @hookimpl
    def evsys_default_inference_factory(run_config: RunConfig) -> Any:
        if run_config.backend.kind in ("local", "tinker"):
            return lambda run_result, run_cfg: pytest.fail("a gepa arm must not be served by its backend")
        return None


@pytest.fixture
def host_with_backends() -> Any:
    with use_host(PluginHost(entry_points=False)) as host:
        host.add_plugin(hooks, "gepa", "evsys-gepa")
        host.add_plugin(_WeightsServer, "weights")
        for kind in ("local", "tinker"):
            registry("backend").add(type(f"{kind}Backend", (_StubBackend,), {}), kind)
        yield host


@pytest.mark.parametrize("backend", ["mock", "local", "tinker"])
def test_deep_validation_and_a_run_on_every_backend(
    host_with_backends: Any, backend: str, tmp_path: Path, mock_config: Any
) -> None:
    from evsys_sdk.loading.validation import deep_problems
    from evsys_sdk.loading.yaml_loader import load_yaml
    from evsys_sdk.run.runner import run_experiment

    config = mock_config("gepa_prompt", params={**TOY, "max_iterations": 1}, backend=backend)
    assert deep_problems(load_yaml(config)) == []
    bad = mock_config("gepa_prompt", params={"max_iteration": 1}, backend=backend)
    problems = deep_problems(load_yaml(bad))
    assert problems and problems[0][0] == ("run", "algorithm", "params", "max_iteration")
    [result] = run_experiment(config)
    assert result.status == "completed", result.error
    run_cfg = load_yaml(config).all_runs()[0]
    factory = get_default_inference_factory(run_cfg)
    client = factory(result, run_cfg) if factory is not None else None
    assert client is not None and client.generate(prompt="What is 1 + 2?") == "3"  # learnt: only the answer


def test_factory_serves_the_saved_prompt_else_the_seed(tmp_path: Path) -> None:
    from evsys_gepa.inference import gepa_inference_factory

    run_cfg = RunConfig.model_validate(
        {"name": "a", "model": {"name": "m"}, "algorithm": {"kind": "gepa_prompt", "params": {**TOY}}}
    )
    prompts = tmp_path / "prompts.json"
    prompts.write_text('{"system_prompt": "Use <answer> tags."}', encoding="utf-8")
    saved = gepa_inference_factory(RunResult("a", "completed", artifacts={"final_prompt": str(prompts)}), run_cfg)
    assert saved.generate(prompt="What is 2 + 2?") == "Let me think. The answer is <answer>4</answer>."
    seed = gepa_inference_factory(RunResult("a", "completed"), run_cfg)
    assert seed.generate(prompt="What is 2 + 2?") == "Let me think. The answer is 4."
