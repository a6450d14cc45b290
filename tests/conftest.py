from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A scratch copy of the examples, laid out as in the repo (whose ``pyproject.toml`` makes it the project
    root their relative paths resolve against), to run commands from."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("outputs", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def evsys(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``evsys`` CLI in a subprocess, as a user would."""
    full_env = {**os.environ, "EVSYS_WORKSPACE": str(cwd / ".evsys"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "evsys_sdk.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
