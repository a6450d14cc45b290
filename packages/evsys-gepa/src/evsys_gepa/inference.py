"""Serving a system prompt on any inference client, exactly as ``gepa_prompt`` evaluated it.

A prompt reaches the task LM in one of two ways (``system_prompt_mode``):

* ``prefix`` (default, works with every client): the text sent is ``"<system prompt>\\n\\n<prompt>"``;
* ``native``: the client is built with its own ``system_prompt`` param (frontier, local and tinker
  clients have one), so the prompt goes in the provider's system role. One client is built per
  prompt, which is cheap for API clients and costly for a local model.

``gepa_inference_factory`` serves a finished ``gepa_prompt`` arm this way, so Experiment benchmarks
score the optimised prompt like a trained checkpoint. The registered kind ``gepa_prompted`` does the
same from YAML (``eval.inference`` or ``evsys eval``) given a ``prompts.json``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.base.logger import get_logger
from evsys_sdk.spec.config import RunConfig, StrictModel
from evsys_sdk.spec.protocols import InferenceClient, RunResult

__all__ = [
    "PromptedInference",
    "SystemPromptMode",
    "build_task_client",
    "compose",
    "gepa_inference_factory",
    "read_prompt",
    "with_system_prompt",
]

log = get_logger("gepa")
SystemPromptMode = Literal["prefix", "native"]


def compose(system_prompt: str, prompt: str) -> str:
    """The text a ``prefix``-mode task LM receives: the system prompt, a blank line, the prompt."""
    return f"{system_prompt}\n\n{prompt}" if system_prompt else prompt


class _WithSystemPrompt:
    """``inner`` with ``system_prompt`` prepended to every prompt (``prefix`` mode)."""

    name: ClassVar[str] = "gepa_prompted"

    def __init__(self, inner: Any, system_prompt: str):
        self.inner = inner
        self.system_prompt = system_prompt

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        text: str = self.inner.generate(
            prompt=compose(self.system_prompt, prompt), max_tokens=max_tokens, temperature=temperature, stop=stop
        )
        return text

    def cache_identity(self) -> dict[str, Any]:
        from evsys_sdk.eval.cache import client_identity

        return {"inner": client_identity(self.inner), "system_prompt": self.system_prompt}


class _AsyncWithSystemPrompt(_WithSystemPrompt):
    """The same, keeping the inner client's native async path for the eval engine."""

    async def agenerate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        text: str = await self.inner.agenerate(
            prompt=compose(self.system_prompt, prompt), max_tokens=max_tokens, temperature=temperature, stop=stop
        )
        return text


def with_system_prompt(inner: Any, system_prompt: str) -> InferenceClient:
    """``inner`` serving ``system_prompt`` in ``prefix`` mode (async when ``inner`` is)."""
    if inspect.iscoroutinefunction(getattr(inner, "agenerate", None)):
        return _AsyncWithSystemPrompt(inner, system_prompt)
    return _WithSystemPrompt(inner, system_prompt)


def build_task_client(
    kind: str, params: dict[str, Any], system_prompt: str, mode: SystemPromptMode = "prefix", *, inner: Any = None
) -> InferenceClient:
    """The task LM ``kind`` (built with ``params``) answering under ``system_prompt``.

    In ``prefix`` mode an already built ``inner`` client is reused; ``native`` builds a client with
    ``system_prompt`` as its own param and fails if the kind has no such param.
    """
    from evsys_sdk.plugins.registry import registry

    cls = registry("inference_client").get(kind)
    if mode == "native":
        fields = getattr(getattr(cls, "Config", None), "model_fields", {})
        if "system_prompt" not in fields:
            raise ConfigError(
                f"system_prompt_mode 'native' needs an inference kind with a `system_prompt` param; "
                f"'{kind}' has none (use system_prompt_mode: prefix)"
            )
        client: InferenceClient = cls(**{**params, "system_prompt": system_prompt or None})
        return client
    return with_system_prompt(inner if inner is not None else cls(**params), system_prompt)


def read_prompt(path: str | Path) -> str:
    """The system prompt saved by ``gepa_prompt``: a ``prompts.json`` (or a dir holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "prompts.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    prompt = data.get("system_prompt") if isinstance(data, dict) else None
    if not isinstance(prompt, str):
        raise ValueError(f"{p} has no string 'system_prompt'")
    return prompt


class PromptedInference:
    """Inference kind ``gepa_prompted``: the inference kind ``base`` answering under a system prompt
    given inline (``system_prompt``) or as the ``prompts.json`` a ``gepa_prompt`` run saved."""

    name: ClassVar[str] = "gepa_prompted"

    class Config(StrictModel):
        base: str = Field(default="mock", description="the inference kind that answers")
        base_config: dict[str, Any] = Field(default_factory=dict, description="params of the base kind")
        system_prompt: str | None = Field(default=None, description="the system prompt, given inline")
        prompt_file: str | None = Field(default=None, description="a prompts.json saved by gepa_prompt (or its dir)")
        system_prompt_mode: SystemPromptMode = Field(
            default="prefix",
            description="prefix: '<prompt>\\n\\n<input>' to any client; native: the client's own system_prompt param",
        )

        @model_validator(mode="after")
        def _one_prompt(self) -> PromptedInference.Config:
            if (self.system_prompt is None) == (self.prompt_file is None):
                raise ValueError("give exactly one of system_prompt and prompt_file")
            return self

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        c = self.config
        try:
            prompt = c.system_prompt if c.system_prompt is not None else read_prompt(str(c.prompt_file))
        except (OSError, ValueError) as exc:  # a missing or malformed file named in the config
            raise ConfigError(f"gepa_prompted: prompt_file {c.prompt_file}: {exc}") from exc
        self.system_prompt = prompt
        self.client = build_task_client(c.base, dict(c.base_config), prompt, c.system_prompt_mode)

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        return self.client.generate(prompt=prompt, max_tokens=max_tokens, temperature=temperature, stop=stop)

    def cache_identity(self) -> dict[str, Any]:
        from evsys_sdk.eval.cache import client_identity

        return client_identity(self.client)


def _served_prompt(run_result: RunResult, seed_prompt: str) -> str:
    """The prompt a finished arm serves: its saved ``final_prompt``, else the best prompt it returned,
    else (a run that saved nothing yet) the seed prompt."""
    saved = run_result.artifacts.get("final_prompt") or run_result.artifacts.get("final_checkpoint")
    if saved and Path(saved).exists():
        return read_prompt(saved)
    best = run_result.extras.get("best_prompt")
    if isinstance(best, str):
        return best
    log.warning("run '%s' saved no prompt: serving the seed prompt", run_result.run_id)
    return seed_prompt


def gepa_inference_factory(run_result: RunResult, run_config: RunConfig) -> InferenceClient:
    """Serves a finished ``gepa_prompt`` arm: its task LM answering under the optimised prompt."""
    from evsys_gepa.algorithm import GEPAPromptAlgorithm

    cfg = GEPAPromptAlgorithm.Config(**run_config.algorithm.params)
    prompt = _served_prompt(run_result, cfg.seed_prompt)
    return build_task_client(cfg.task_lm, dict(cfg.task_lm_config), prompt, cfg.system_prompt_mode)
