"""Shared fixtures: one tiny offline model for the whole session, threads pinned, no hub access."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

for _key, _value in {
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

# Known at import time so contract suites (class attributes) can name it; built by the fixture below.
TINY = Path(tempfile.gettempdir()) / f"evsys-local-tiny-{os.getpid()}"

CHAT_ROWS: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": f"{a}+{b}"}, {"role": "assistant", "content": str(a + b)}]}
    for a in range(4)
    for b in range(4)
]
TASK_ROWS: list[dict[str, Any]] = [
    {
        "task_id": f"t{a}",
        "instruction": f"{a}+{a}",
        "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": str(2 * a)},
    }
    for a in range(4)
]
PROMPT_ROWS: list[dict[str, Any]] = [{"inputs": {"question": f"{a}+{a}"}, "expected": str(2 * a)} for a in range(4)]
PREFERENCE_ROWS: list[dict[str, Any]] = [
    {
        "prompt": [{"role": "user", "content": f"{a}+{a}"}],
        "chosen": [{"role": "assistant", "content": str(2 * a)}],
        "rejected": [{"role": "assistant", "content": str(2 * a + 1)}],
    }
    for a in range(4)
]


@pytest.fixture(scope="session", autouse=True)
def tiny_model() -> Path:
    import torch

    from evsys_local.testing import make_tiny_model

    torch.set_num_threads(1)
    if not (TINY / "model.safetensors").exists():
        make_tiny_model(TINY)
    return TINY


def local_config(
    out: Path, algorithm: str, params: dict[str, Any], rows: list[dict[str, Any]], **model: Any
) -> dict[str, Any]:
    from evsys_sdk.testing import mock_experiment_config

    return mock_experiment_config(
        out, algorithm=algorithm, params=params, rows=rows, backend="local", model={"name": str(TINY), **model}
    )


def metric_rows(run_dir: Path) -> list[dict[str, Any]]:
    import json

    lines = (run_dir / "logs" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]
