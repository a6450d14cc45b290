"""Strict configs of the frontier clients and the LLM judge (plain pydantic: no SDK import).

A config names the environment variable holding the key (``api_key_env``), never the key itself, so
configs can be logged, hashed into cache identities and written to run records safely.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.params import FIXED, temperature_field

__all__ = ["ClaudeConfig", "FrontierConfig", "GeminiConfig", "LLMJudgeConfig", "OpenAIConfig"]


def _path(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an http(s) URL, got {url!r}")
    return parts.path.rstrip("/")


class FrontierConfig(StrictModel):
    """What every frontier client shares."""

    model: str = Field(min_length=1, description="the provider's model id")
    api_key_env: str = Field(min_length=1, description="the environment variable holding the API key")
    base_url: str | None = Field(
        default=None, description="API root; None uses the SDK's (or its env var)", json_schema_extra=FIXED
    )
    default_max_tokens: int = Field(default=1024, ge=1, description="max tokens when a call gives none")
    default_temperature: float = temperature_field(0.0, "temperature when a call gives none")
    system_prompt: str | None = Field(default=None, description="a system prompt sent with every request")
    timeout_s: float = Field(default=60.0, gt=0, description="seconds one request may take", json_schema_extra=FIXED)
    extra_headers: dict[str, str] = Field(
        default_factory=dict, description="HTTP headers added to every request", json_schema_extra=FIXED
    )
    max_retries: int = Field(
        default=0,
        ge=0,
        description="the SDK's own retries; 0 because the eval engine retries (honouring Retry-After, capped) "
        "and records every retry in its RetryReport. Raise it for direct generate() calls outside the engine.",
    )
    max_concurrency: int = Field(default=16, ge=1, description="requests in flight in generate_batch")

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None


class ClaudeConfig(FrontierConfig):
    model: str = Field(default="claude-sonnet-4-6", min_length=1, description="the Anthropic model id")
    api_key_env: str = Field(
        default="ANTHROPIC_API_KEY",
        min_length=1,
        description="the environment variable holding the API key",
        json_schema_extra=FIXED,
    )
    temperature_in_body: bool = Field(
        default=False,
        description="anthropic 2.x has no temperature parameter: send it in the request body instead "
        "(only for endpoints that still accept it); otherwise a non-default temperature is refused",
    )

    @field_validator("base_url")
    @classmethod
    def _no_version(cls, value: str | None) -> str | None:
        if value and _path(value).endswith("/v1"):
            raise ValueError(f"base_url {value!r} must not end in /v1: the SDK appends /v1/messages itself")
        return value


class OpenAIConfig(FrontierConfig):
    model: str = Field(default="gpt-4o-mini", min_length=1, description="the OpenAI (or compatible server's) model id")
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        min_length=1,
        description="the environment variable holding the API key",
        json_schema_extra=FIXED,
    )
    organization: str | None = Field(
        default=None, description="the OpenAI organization id sent with requests", json_schema_extra=FIXED
    )
    api: Literal["chat", "responses"] = Field(
        default="chat", description="Chat Completions (also served by OpenAI-compatible servers) or Responses"
    )

    @field_validator("base_url")
    @classmethod
    def _has_version(cls, value: str | None) -> str | None:
        if value and not _path(value).endswith("/v1"):
            raise ValueError(
                f"base_url {value!r} must end in /v1 (e.g. {value.rstrip('/')}/v1): the SDK appends "
                "/chat/completions and /responses to it"
            )
        return value


class GeminiConfig(FrontierConfig):
    model: str = Field(default="gemini-2.5-flash", min_length=1, description="the Gemini model id")
    api_key_env: str = Field(
        default="GEMINI_API_KEY",
        min_length=1,
        description="the environment variable holding the API key",
        json_schema_extra=FIXED,
    )
    fallback_api_key_env: str | None = Field(default="GOOGLE_API_KEY", description="read when api_key_env is unset")
    system_instruction: str | None = Field(default=None, description="Gemini's name for system_prompt")
    api_version: str | None = Field(default=None, description="v1 (the SDK's default) or v1beta")

    @field_validator("base_url")
    @classmethod
    def _no_version(cls, value: str | None) -> str | None:
        if value and _path(value).rsplit("/", 1)[-1].startswith("v1"):
            raise ValueError(
                f"base_url {value!r} must not end in an API version: the SDK appends /<api_version>/models/..."
            )
        return value

    @model_validator(mode="after")
    def _one_system(self) -> GeminiConfig:
        if self.system_instruction is not None and self.system_prompt is not None:
            raise ValueError("give system_prompt or system_instruction, not both")
        if self.system_instruction is not None:
            self.system_prompt = self.system_instruction
        return self


class JudgeSpec(StrictModel):
    kind: str = Field(min_length=1, description="the judge's inference kind (claude, openai, gemini, ...)")
    params: dict[str, Any] = Field(default_factory=dict, description="that inference kind's params")


class LLMJudgeConfig(StrictModel):
    """The ``llm_judge`` verifier. A task's ``judge_model`` (``kind`` or ``kind:model``, any registered
    inference kind) and ``rubric`` win over ``judge`` and ``rubric`` here."""

    judge: JudgeSpec | None = Field(default=None, description="the judge when a task names none")
    judge_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="extra params per judge kind, e.g. {claude: {base_url: ...}}"
    )
    rubric: str = Field(default="", description="what the judge grades against, when a task gives none")
    max_tokens: int = Field(default=1024, ge=1, description="tokens the judge may write")
    temperature: float = temperature_field(0.0, "the judge's sampling temperature")
    scale: float = Field(default=1.0, gt=0, description="the judge scores 0..scale; the reward is score/scale")
    max_attempts: int = Field(default=4, ge=1, description="tries per judgement on transient errors")
    max_retry_after_s: float = Field(default=60.0, ge=0, description="longest Retry-After wait honoured, in seconds")
    template: str | None = Field(
        default=None,
        description="the judge prompt, with {rubric}, {prompt}, {completion}, {reference} and {scale} fields",
    )
