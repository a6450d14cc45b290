from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test records into its own workspace, never into ./.evsys of the checkout."""
    monkeypatch.setenv("EVSYS_WORKSPACE", str(tmp_path / "workspace"))


@pytest.fixture
def mock_run() -> Any:
    """A factory for a single mock-backend run dict."""

    def make(
        name: str = "r0",
        *,
        algorithm: str = "mock_sft",
        params: dict[str, Any] | None = None,
        rows: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "data": {"source_kind": "in_memory", "rows": rows if rows is not None else [{"q": i} for i in range(4)]},
            "model": {"name": "tiny"},
            "backend": {"kind": "mock"},
            "algorithm": {"kind": algorithm, "params": params or {"batch_size": 1}},
            **extra,
        }

    return make


@pytest.fixture
def experiment(tmp_path: Path, mock_run: Any) -> Any:
    """A factory for an experiment dict writing into ``tmp_path``."""

    def make(**fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"name": "exp", "output_dir": str(tmp_path / "out")}
        if not any(k in fields for k in ("run", "runs", "matrix")):
            base["run"] = mock_run()
        return {**base, **fields}

    return make
