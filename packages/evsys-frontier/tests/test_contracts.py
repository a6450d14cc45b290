"""Core's contract suites, run against the fake server (the installed plugin is found by entry point)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from evsys_frontier.testing import FakePrompt, FakeProviderServer
from evsys_sdk.testing import InferenceClientContract, VerifierContract


class _OnFakeServer:
    """Serves the suite's class from one fake server; params get its URL."""

    params: ClassVar[dict[str, Any]] = {}
    openai_path: ClassVar[bool] = False
    server: ClassVar[FakeProviderServer]

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _fake_server(cls) -> Iterator[None]:
        with FakeProviderServer(responder=cls.respond) as srv:
            cls.server = srv
            yield

    @staticmethod
    def respond(p: FakePrompt) -> str:
        return f"You said: {p.prompt}"

    def contract_params(self, tmp_path: Path) -> dict[str, Any]:
        url = self.server.openai_url if self.openai_path else self.server.url
        return {"base_url": url, **self.params}


class TestClaudeContract(_OnFakeServer, InferenceClientContract):
    inference_kind = "claude"
    # anthropic 2.x has no temperature parameter and the suite samples at 0.7: send it in the body.
    params: ClassVar[dict[str, Any]] = {"temperature_in_body": True}


class TestOpenAIChatContract(_OnFakeServer, InferenceClientContract):
    inference_kind = "openai"
    openai_path = True


class TestOpenAIResponsesContract(_OnFakeServer, InferenceClientContract):
    inference_kind = "openai"
    openai_path = True
    params: ClassVar[dict[str, Any]] = {"api": "responses"}


class TestGeminiContract(_OnFakeServer, InferenceClientContract):
    inference_kind = "gemini"


def grade(p: FakePrompt) -> str:
    """A judge that gives 1 when the response contains the reference, else 0.2."""
    response = re.search(r"<response>\n(.*)\n</response>", p.prompt, re.S)
    reference = re.search(r"<reference>\n(.*)\n</reference>", p.prompt, re.S)
    ok = response and reference and reference.group(1).lower() in response.group(1).lower()
    return "The answer matches the reference.\nSCORE: 1" if ok else "It misses the point.\nSCORE: 0.2"


class TestLLMJudgeContract(_OnFakeServer, VerifierContract):
    verifier_kind = "llm_judge"
    respond = staticmethod(grade)
    cases: ClassVar[list[tuple[str, str, dict[str, Any], float]]] = [
        (
            "Capital of France?",
            "It is Paris.",
            {"judge_model": "claude", "rubric": "correct", "expected": "paris"},
            1.0,
        ),
        ("Capital of France?", "Lyon", {"judge_model": "openai:gpt-4o", "rubric": "correct", "expected": "paris"}, 0.2),
        ("2+2?", "4", {"judge_model": "gemini", "rubric": "correct", "expected": "4"}, 1.0),
    ]

    def contract_params(self, tmp_path: Path) -> dict[str, Any]:
        url = self.server.url
        return {
            "judge_params": {
                "claude": {"base_url": url},
                "openai": {"base_url": url + "/v1"},
                "gemini": {"base_url": url},
            }
        }
