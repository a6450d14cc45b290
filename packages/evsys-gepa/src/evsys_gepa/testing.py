"""Deterministic toy LMs for offline tests and examples: a task LM whose answers depend on its system
prompt, and a reflection LM that improves prompts from GEPA's feedback. No model, no network.

* ``gepa_toy`` solves ``A + B`` / ``A - B`` / ``A * B`` found in the last block of its prompt (the
  user text; the blocks before it are the system prompt) and formats the answer as the system prompt
  asks: by default ``"Let me think. The answer is 7."``; with ``<answer>`` in the system prompt the
  number goes inside ``<answer></answer>`` tags; with "only the answer" the reply is just that.
* ``gepa_toy_reflector`` reads GEPA's reflection prompt (the current instruction in the first ```
  block, then the examples with their expected answers and feedback) and returns the instruction
  with the first lesson it lacks that the feedback calls for: tags when expected answers carry
  ``<answer>`` tags, then "only the answer" when responses contain the expected answer amid other
  text. A prompt with nothing left to learn comes back unchanged.

So on tasks expecting ``<answer>N</answer>`` under the default score, the seed prompt scores 0, one
lesson 0.5 and both 1.0: every accepted GEPA proposal strictly improves the best score.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field

from evsys_sdk.spec.config import StrictModel

__all__ = ["LESSON_ONLY", "LESSON_TAGS", "ToyReflectionLM", "ToyTaskLM", "toy_tasks"]

LESSON_TAGS = "Write the final answer inside <answer></answer> tags."
LESSON_ONLY = "Reply with only the answer, no other words."
_ARITH = re.compile(r"(-?\d+)\s*([+*x-])\s*(-?\d+)")


def _cut(text: str, stop: list[str] | None) -> str:
    for s in stop or []:
        if s and s in text:
            text = text[: text.index(s)]
    return text


class ToyTaskLM:
    """Inference kind ``gepa_toy``: arithmetic, formatted as its system prompt says."""

    name: ClassVar[str] = "gepa_toy"

    class Config(StrictModel):
        unknown: str = Field(default="I don't know.", description="the reply when the prompt holds no sum")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.calls = 0

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        self.calls += 1
        system, _, user = prompt.rpartition("\n\n")
        matches = _ARITH.findall(user)
        if not matches:
            return _cut(self.config.unknown, stop)
        a, op, b = matches[-1]
        value = int(a) + int(b) if op == "+" else int(a) - int(b) if op == "-" else int(a) * int(b)
        answer = f"<answer>{value}</answer>" if "<answer>" in system.lower() else str(value)
        text = answer if "only the answer" in system.lower() else f"Let me think. The answer is {answer}."
        return _cut(text, stop)


class ToyReflectionLM:
    """Inference kind ``gepa_toy_reflector``: proposes the current instruction plus one lesson."""

    name: ClassVar[str] = "gepa_toy_reflector"

    class Config(StrictModel):
        """No params."""

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.calls = 0

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        self.calls += 1
        parts = prompt.split("```")
        current = parts[1].strip("\n") if len(parts) > 2 else ""
        evidence = "```".join(parts[2:])
        lessons = (
            (LESSON_TAGS, "<answer>" in evidence),
            (LESSON_ONLY, "contains the expected answer but" in evidence),
        )
        for lesson, needed in lessons:
            if needed and lesson not in current:
                current = f"{current}\n{lesson}" if current else lesson
                break
        return _cut(f"Here is the improved instruction:\n```\n{current}\n```", stop)


def toy_tasks(n: int, *, start: int = 1, prefix: str = "sum") -> list[dict[str, Any]]:
    """``n`` Harbor tasks "What is A + B?" expecting ``<answer>A+B</answer>``, scored by
    ``gepa_partial_match`` (1 exact, 0.5 when the reply contains it)."""
    return [
        {
            "task_id": f"{prefix}-{i}",
            "instruction": f"What is {i} + {i + 3}?",
            "verifier": {
                "kind": "in_process",
                "fn_name": "gepa_partial_match",
                "expected": f"<answer>{2 * i + 3}</answer>",
            },
            "metadata": {"a": i},
        }
        for i in range(start, start + n)
    ]
