"""Small experiment configs for tests: one run on the mock backend (or any backend), rows in memory."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Protocol

__all__ = ["DEFAULT_ROWS", "MockConfigFactory", "mock_experiment_config"]

# Rows every built-in understands: prompt/completion, chat messages, and fields for templates and metrics.
DEFAULT_ROWS: list[dict[str, Any]] = [
    {
        "query": f"What is {i} + 2?",
        "prompt": f"What is {i} + 2?",
        "completion": f"<think>{i} plus 2</think>\n<answer>{i + 2}</answer>",
        "answer": str(i + 2),
        "messages": [
            {"role": "user", "content": f"What is {i} + 2?"},
            {"role": "assistant", "content": f"<think>{i} plus 2</think>\n<answer>{i + 2}</answer>"},
        ],
    }
    for i in range(8)
]


def mock_experiment_config(
    output_dir: str | Path,
    algorithm: str = "mock_sft",
    *,
    params: dict[str, Any] | None = None,
    rows: list[dict[str, Any]] | None = None,
    backend: str = "mock",
    backend_params: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    name: str = "contract",
) -> dict[str, Any]:
    """An ExperimentConfig dict with a single run ``name`` writing under ``output_dir``.

    The data store is ``local`` rooted at ``output_dir`` and the log store ``jsonl``, so the run's
    metrics land in ``<output_dir>/<name>/logs/metrics.jsonl``. Inputs are deep-copied: a test mutating
    the returned dict never changes the class attributes it was built from.
    """
    return {
        "version": 1,
        "name": f"{name}_experiment",
        "output_dir": str(output_dir),
        "data_store": {"kind": "local", "params": {"root": str(output_dir)}},
        "log_store": {"kind": "jsonl"},
        "run": {
            "name": name,
            "data": {"source_kind": "in_memory", "rows": copy.deepcopy(DEFAULT_ROWS if rows is None else rows)},
            "model": copy.deepcopy(model) if model is not None else {"name": "mock-model"},
            "algorithm": {"kind": algorithm, "params": copy.deepcopy(params or {})},
            "backend": {"kind": backend, "params": copy.deepcopy(backend_params or {})},
        },
    }


class MockConfigFactory(Protocol):
    """The ``mock_config`` fixture: ``mock_experiment_config`` with ``output_dir`` set to ``tmp_path``."""

    def __call__(
        self,
        algorithm: str = "mock_sft",
        *,
        params: dict[str, Any] | None = None,
        rows: list[dict[str, Any]] | None = None,
        backend: str = "mock",
        backend_params: dict[str, Any] | None = None,
        model: dict[str, Any] | None = None,
        name: str = "contract",
    ) -> dict[str, Any]: ...
