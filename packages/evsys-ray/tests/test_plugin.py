"""Plugin wiring: the hooks module is light, the executor is listed and its params validated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

from evsys_sdk import validate_yaml
from evsys_sdk.testing import ExecutorContract


def test_hooks_and_package_do_not_import_ray() -> None:
    code = (
        "import sys, evsys_ray, evsys_ray.hooks; from evsys_sdk.plugins.registry import list_executors; "
        "assert 'ray' in list_executors(); print(sorted(m for m in ('ray', 'grpc') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_listed_and_validated_through_the_cli(tmp_path: Path) -> None:
    config = {
        "name": "exp",
        "output_dir": str(tmp_path / "out"),
        "executor": {"kind": "ray", "params": {"max_concurent": 2}},
        "run": {
            "name": "a",
            "model": {"name": "tiny"},
            "backend": {"kind": "mock"},
            "data": {"source_kind": "in_memory", "rows": [{"prompt": "p", "completion": "c"}]},
            "algorithm": {"kind": "sft"},
        },
    }
    problems = validate_yaml(config, deep=True)
    assert any("executor.params.max_concurent: unknown field; did you mean 'max_concurrent'?" in p for p in problems)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    cli = [sys.executable, "-m", "evsys_sdk.cli"]
    listed = subprocess.run([*cli, "list", "--kind", "executors"], capture_output=True, text=True, timeout=120)
    assert listed.stdout == "executors:\n  - process\n  - ray\n  - sequential\n", listed.stderr
    checked = subprocess.run([*cli, "validate", "--deep", str(path)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "max_concurent" in checked.stderr


class TestRayExecutorContract(ExecutorContract):
    """Registered, strict, every param described, built from any schema-drawn params without Ray."""

    executor_kind = "ray"
    params: ClassVar[dict[str, Any]] = {"max_concurrent": 2, "kill_grace_seconds": 1.0}
