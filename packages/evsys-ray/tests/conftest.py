"""One local Ray instance for the whole session (``ray.init(num_cpus=2)``): starting Ray costs seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test records into its own workspace, never into ./.evsys of the checkout."""
    monkeypatch.setenv("EVSYS_WORKSPACE", str(tmp_path / "workspace"))


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    import ray

    # Workers import the test algorithms (evsys_sdk.testing.executors) by name from the installed evsys-core.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()
