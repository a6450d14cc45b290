"""Plugin wiring: the hooks module is light, the executor is listed and its params validated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evsys_sdk import validate_yaml

pytestmark = pytest.mark.timeout(120)


def test_hooks_and_package_do_not_import_submitit() -> None:
    code = (
        "import sys, evsys_slurm, evsys_slurm.hooks, evsys_slurm.testing; "
        "from evsys_sdk.plugins.registry import list_executors; "
        "assert 'slurm' in list_executors(); print(sorted(m for m in sys.modules if m.startswith('submitit')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_listed_and_validated_through_the_cli(tmp_path: Path) -> None:
    config = {
        "name": "exp",
        "output_dir": str(tmp_path / "out"),
        "executor": {"kind": "slurm", "params": {"max_in_fligth": 2}},
        "run": {
            "name": "a",
            "model": {"name": "tiny"},
            "backend": {"kind": "mock"},
            "data": {"source_kind": "in_memory", "rows": [{"prompt": "p", "completion": "c"}]},
            "algorithm": {"kind": "sft"},
        },
    }
    problems = validate_yaml(config, deep=True)
    assert any("executor.params.max_in_fligth: unknown field; did you mean 'max_in_flight'?" in p for p in problems)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    cli = [sys.executable, "-m", "evsys_sdk.cli"]
    listed = subprocess.run([*cli, "list", "--kind", "executors"], capture_output=True, text=True, timeout=120)
    assert "  - slurm\n" in listed.stdout, listed.stderr
    checked = subprocess.run([*cli, "validate", "--deep", str(path)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "max_in_fligth" in checked.stderr
    assert "Traceback" not in checked.stderr
