"""LLM judges: any registered inference client grades a completion against a rubric.

* ``LLMJudge``, the registered verifier ``llm_judge``: ``verify(prompt=, completion=, target=)`` where
  ``target`` holds an ``LLMJudgeVerifier``'s fields (``judge_model``, ``rubric``) and optionally the
  reference answer (``expected``). The reward is the judge's score scaled into [0, 1]; ``info`` carries
  the judge's rationale.
  Core runs it for every task whose verifier is ``{"kind": "llm_judge", ...}`` (benchmarks, RL).
* The in-process verifier fn ``llm_judge`` (``fn(completion, expected, params)``), for task files that
  name the judge as an in-process function with its params.

``judge_model`` is an inference kind, optionally with a model: ``claude``, ``openai:gpt-4o``,
``gemini:gemini-2.5-pro``, ``mock``. Judge calls are retried on transient errors (Retry-After honoured,
capped); a judge that stays unavailable scores 0 with the failure in ``info``; a judge that refuses the
request (bad key, unknown model) raises.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any, ClassVar

from evsys_frontier.config import LLMJudgeConfig

__all__ = ["DEFAULT_TEMPLATE", "LLMJudge", "llm_judge_fn", "parse_score"]

_logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = """You are an impartial judge grading an AI model's response against a rubric.

Rubric:
{rubric}

The task given to the model:
<task>
{prompt}
</task>
{reference}
The model's response:
<response>
{completion}
</response>

Explain briefly how well the response meets the rubric. Then end with one line of the form
SCORE: <a number from 0 to {scale}>"""

_REFERENCE = "\nA reference answer:\n<reference>\n{expected}\n</reference>\n"
_SCORE = re.compile(r"score\W{0,3}[:=]\W{0,3}(-?\d+(?:\.\d+)?)(?:\s*/\s*(\d+(?:\.\d+)?))?", re.IGNORECASE)
_BASE_URL_ENVS = ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "GOOGLE_GEMINI_BASE_URL")


def parse_score(text: str, scale: float = 1.0) -> tuple[float, float, str] | None:
    """``(reward in [0, 1], raw score, rationale)`` from the judge's last ``SCORE: x`` (or ``x/N``)
    line, or None when there is none."""
    matches = list(_SCORE.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    raw = float(last.group(1))
    denominator = float(last.group(2)) if last.group(2) else scale
    reward = min(1.0, max(0.0, raw / denominator)) if denominator > 0 else 0.0
    rationale = text[: last.start()].strip() or text.strip()
    return reward, raw, rationale


class LLMJudge:
    """The ``llm_judge`` verifier (see the module docstring)."""

    name: ClassVar[str] = "llm_judge"
    Config: ClassVar[type[LLMJudgeConfig]] = LLMJudgeConfig

    def __init__(self, **params: Any) -> None:
        self.config = LLMJudgeConfig(**params)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _spec(self, judge_model: str | None) -> tuple[str, dict[str, Any]]:
        if judge_model:
            kind, _, model = judge_model.partition(":")
            params = dict(self.config.judge_params.get(kind, {}))
            if model:
                params["model"] = model
            return kind, params
        if self.config.judge is not None:
            kind = self.config.judge.kind
            return kind, {**self.config.judge_params.get(kind, {}), **self.config.judge.params}
        raise ValueError("llm_judge: no judge: the task's judge_model is empty and the verifier's `judge` is unset")

    def judge_client(self, judge_model: str | None = None) -> Any:
        """The inference client judging for ``judge_model`` (built once, then reused)."""
        kind, params = self._spec(judge_model)
        # Clients read base URLs from the environment when params give none: a changed variable is a new client.
        env = {name: os.environ.get(name) for name in _BASE_URL_ENVS}
        key = json.dumps([kind, params, env], sort_keys=True, default=str)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from evsys_sdk.plugins.registry import registry

                client = self._clients[key] = registry("inference_client").get(kind)(**params)
            return client

    def judge_prompt(self, *, prompt: str, completion: str, rubric: str, expected: Any = None) -> str:
        reference = "" if expected in (None, "") else _REFERENCE.format(expected=expected)
        scale = f"{self.config.scale:g}"
        return (self.config.template or DEFAULT_TEMPLATE).format(
            rubric=rubric, prompt=prompt or "(not given)", completion=completion, reference=reference, scale=scale
        )

    def verify(self, *, prompt: str, completion: str, target: dict[str, Any]) -> Any:
        from evsys_sdk.eval.retry import RetryPolicy, RetryReport, retry_sync
        from evsys_sdk.spec.protocols import VerificationResult

        rubric = str(target.get("rubric") or self.config.rubric)
        if not rubric.strip():
            raise ValueError("llm_judge: no rubric: give the task a rubric or set the verifier's `rubric`")
        judge_model = target.get("judge_model") or None
        client = self.judge_client(judge_model)
        label = judge_model or (self.config.judge.kind if self.config.judge else "")
        text = self.judge_prompt(prompt=prompt, completion=completion, rubric=rubric, expected=target.get("expected"))
        policy = RetryPolicy(max_attempts=self.config.max_attempts, max_retry_after=self.config.max_retry_after_s)
        report = RetryReport()
        answer = retry_sync(
            policy,
            lambda: client.generate(
                prompt=text, max_tokens=self.config.max_tokens, temperature=self.config.temperature
            ),
            report=report,
            context=f"llm_judge {label}",
        )
        if answer is None:
            failure = report.failures[-1]
            _logger.warning(
                "llm_judge %s unavailable after %d attempts: %s", label, failure.attempts, failure.exception_message
            )
            return VerificationResult(
                0.0, {"judge_model": label, "error": f"judge unavailable: {failure.exception_message}"}
            )
        parsed = parse_score(answer, self.config.scale)
        if parsed is None:
            return VerificationResult(
                0.0, {"judge_model": label, "error": "the judge gave no SCORE line", "rationale": answer}
            )
        reward, raw, rationale = parsed
        return VerificationResult(reward, {"judge_model": label, "score": raw, "rationale": rationale})


# The in-process fn: params hold the judge spec (judge_model, rubric), the task's prompt (``prompt``)
# and any LLMJudgeConfig field; one LLMJudge per distinct config is kept so judge clients are reused.
_judges: dict[str, LLMJudge] = {}
_judges_lock = threading.Lock()
_TASK_KEYS = ("judge_model", "rubric", "prompt")


def _judge_for(params: dict[str, Any]) -> LLMJudge:
    overrides = {k: v for k, v in params.items() if k not in _TASK_KEYS}
    key = json.dumps(overrides, sort_keys=True, default=str)
    with _judges_lock:
        judge = _judges.get(key)
        if judge is None:
            judge = _judges[key] = LLMJudge(**overrides)
        return judge


def llm_judge_fn(model_output: str, expected: Any, params: dict[str, Any]) -> float:
    """The ``llm_judge`` verifier fn: ``params`` = ``{judge_model, rubric, prompt?, <LLMJudgeConfig fields>}``."""
    judge = _judge_for(params)
    target = {"judge_model": params.get("judge_model"), "rubric": params.get("rubric"), "expected": expected}
    result = judge.verify(prompt=str(params.get("prompt", "")), completion=model_output, target=target)
    return float(result.reward)
