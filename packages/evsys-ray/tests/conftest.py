"""One local Ray instance for the whole session (``ray.init(num_cpus=2)``): starting Ray costs seconds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test records into its own workspace, never into ./.evsys of the checkout."""
    monkeypatch.setenv("EVSYS_WORKSPACE", str(tmp_path / "workspace"))


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    import ray

    # Workers import the test plugin by name, so this folder goes on their path too.
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()
