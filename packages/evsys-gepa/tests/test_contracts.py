"""Core's contract suites: the algorithm and the inference kinds this package registers."""

from __future__ import annotations

from typing import Any, ClassVar

from conftest import TOY

from evsys_sdk.testing import AlgorithmContract, InferenceClientContract


class TestGEPAPrompt(AlgorithmContract):
    algorithm_kind = "gepa_prompt"
    params: ClassVar[dict[str, Any]] = {**TOY, "max_iterations": 3, "examples_per_eval": 4}


class TestGEPAPromptOnTheMockLM(AlgorithmContract):
    """The defaults' task LM (core's mock) reflecting on itself: nothing improves, the run still completes."""

    algorithm_kind = "gepa_prompt"
    params: ClassVar[dict[str, Any]] = {"max_iterations": 2, "examples_per_eval": 2}


class TestToyTaskLM(InferenceClientContract):
    inference_kind = "gepa_toy"
    prompt = "Answer only the answer.\n\nWhat is 12 + 30?"
    stop = "2"


class TestToyReflectionLM(InferenceClientContract):
    inference_kind = "gepa_toy_reflector"
    prompt = "I gave:\n```\nBe brief.\n```\nExamples:\n```\n## Expected\n<answer>4</answer>\n```"


class TestPromptedInference(InferenceClientContract):
    inference_kind = "gepa_prompted"
    params: ClassVar[dict[str, Any]] = {"base": "gepa_toy", "system_prompt": "Use <answer> tags."}
    prompt = "What is 2 + 2?"
