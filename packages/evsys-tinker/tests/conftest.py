"""Test environment: no telemetry, no network, the emulator's checkpoints in a temp dir, strict plugins."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

# Set before tinker is imported anywhere: the SDK otherwise POSTs telemetry.
os.environ["TINKER_TELEMETRY"] = "0"
os.environ.setdefault("EVSYS_STRICT_PLUGINS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["EVSYS_TINKER_EMULATOR_DIR"] = tempfile.mkdtemp(prefix="evsys-tinker-emulator-")

MODEL = {"name": "Qwen/Qwen3-4B-Instruct-2507"}
EMULATOR = {"emulator": True}

CHAT_ROWS: list[dict[str, Any]] = [
    {
        "messages": [
            {"role": "user", "content": f"What is {i} + 2?"},
            {"role": "assistant", "content": f"<answer>{i + 2}</answer>"},
        ]
    }
    for i in range(8)
]

TASK_ROWS: list[dict[str, Any]] = [
    {
        "task_id": f"t{i}",
        "instruction": f"Say the letter {c}",
        "verifier": {"kind": "in_process", "fn_name": "contains", "expected": c},
    }
    for i, c in enumerate("aeio")
]

PREFERENCE_ROWS: list[dict[str, Any]] = [
    {"prompt": f"What is {i} + 2?", "chosen": f"<answer>{i + 2}</answer>", "rejected": f"<answer>{i + 3}</answer>"}
    for i in range(4)
]

PROMPT_ROWS: list[dict[str, Any]] = [
    {"inputs": {"question": f"What is {i} + 2?"}, "expected": f"<answer>{i + 2}</answer>"} for i in range(4)
]


@pytest.fixture(autouse=True)
def _guarded(no_network: None) -> Iterator[None]:
    """Every test runs under core's network guard: loopback only."""
    yield
