"""Built-in registry verifiers (classes with ``verify``); registered centrally in ``builtins.hooks``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.protocols import VerificationResult

__all__ = ["VERIFIER_CLASSES", "FormatOnlyVerifier"]


class FormatOnlyVerifier:
    """Rewards structure only: a ``<think>...</think>`` part and an ``<answer>...</answer>`` part.

    The reward is the sum of the configured rewards of the parts present (both tags of a pair must
    occur); the answer's content is never checked.
    """

    name: ClassVar[str] = "format_only"

    class Config(StrictModel):
        has_think_reward: float = Field(default=0.5, ge=0, le=1, description="reward for a <think> block")
        has_answer_reward: float = Field(default=0.5, ge=0, le=1, description="reward for an <answer> block")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def verify(self, *, prompt: str, completion: str, target: dict[str, Any]) -> VerificationResult:
        has_think = "<think>" in completion and "</think>" in completion
        has_answer = "<answer>" in completion and "</answer>" in completion
        reward = (self.config.has_think_reward if has_think else 0.0) + (
            self.config.has_answer_reward if has_answer else 0.0
        )
        return VerificationResult(reward=reward, info={"has_think": has_think, "has_answer": has_answer})


VERIFIER_CLASSES: tuple[type[Any], ...] = (FormatOnlyVerifier,)
