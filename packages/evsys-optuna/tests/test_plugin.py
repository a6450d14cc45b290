"""Plugin wiring: the hooks and the registered classes import no optuna (listing and validating a
search stay light), and evsys discovers the plugin through its entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import search_config

pytestmark = pytest.mark.timeout(120)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


def test_listing_and_validating_import_no_optuna(tmp_path: Path) -> None:
    cfg = search_config(tmp_path)
    cfg["run"]["algorithm"] = {"kind": "sft", "params": {}}
    cfg["search"]["space"] = {"algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]}}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = (
        "import sys\n"
        "from evsys_sdk.plugins.registry import registry\n"
        "from evsys_sdk.search.engine import _prepare\n"
        "import yaml\n"
        "from evsys_sdk.spec.config import ExperimentConfig\n"
        "assert 'tpe' in registry('proposer').list(); registry('proposer').get('tpe')\n"
        f"_prepare(ExperimentConfig.model_validate(yaml.safe_load(open({str(path)!r}))))\n"
        "print('optuna' in sys.modules)"
    )
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_evsys_lists_the_plugin_and_its_proposer() -> None:
    plugins = _run("-m", "evsys_sdk.cli", "plugins")
    assert "optuna  evsys-optuna 0.1.0  ok  evsys_optuna.hooks" in plugins.stdout, plugins.stdout + plugins.stderr
    listed = _run("-m", "evsys_sdk.cli", "list", "--kind", "proposers")
    assert {"tpe", "cmaes", "gp"} <= set(listed.stdout.split()), listed.stdout + listed.stderr


def test_a_bad_tpe_param_is_one_located_line(tmp_path: Path) -> None:
    cfg = search_config(tmp_path, proposer={"kind": "tpe", "params": {"n_startup": 5}})
    cfg["run"]["algorithm"] = {"kind": "sft", "params": {}}
    cfg["search"]["space"] = {"algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]}}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = _run("-m", "evsys_sdk.cli", "evolve", str(path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "n_startup" in proc.stderr and "n_startup_trials" in proc.stderr, proc.stderr
