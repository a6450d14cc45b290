"""Every test runs offline under core's network guard, with plugins loaded strictly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("EVSYS_STRICT_PLUGINS", "1")

TOY = {"task_lm": "gepa_toy", "reflection_lm": "gepa_toy_reflector"}


def prompt_rows(n: int = 8, start: int = 1) -> list[dict[str, Any]]:
    """Prompt examples "What is A + B?" expecting ``<answer>A+B</answer>`` (default score: 0 / 0.5 / 1)."""
    return [
        {"inputs": {"question": f"What is {i} + {i + 3}?"}, "expected": f"<answer>{2 * i + 3}</answer>"}
        for i in range(start, start + n)
    ]


@pytest.fixture(autouse=True)
def _offline(no_network: None) -> Iterator[None]:
    yield
