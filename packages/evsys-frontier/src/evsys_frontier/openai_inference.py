"""Inference ``openai``: Chat Completions (default) or the Responses API through the official ``openai``
SDK (3.x). ``base_url`` must end in ``/v1`` (the SDK appends ``/chat/completions``).

The SDK is imported when a client is built, never at module import (the hooks stay light).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, ClassVar

from evsys_frontier._base import Call, Failure, FrontierInference, Reply
from evsys_frontier.claude import stainless_failure, stainless_http_client
from evsys_frontier.config import OpenAIConfig

__all__ = ["OpenAIInference"]


class OpenAIInference(FrontierInference):
    name: ClassVar[str] = "openai"
    Config: ClassVar[type[OpenAIConfig]] = OpenAIConfig
    sdk_module: ClassVar[str] = "openai"
    extra: ClassVar[str] = "openai"

    config: OpenAIConfig

    def _make_client(self, key: str, *, async_: bool) -> Any:
        cls = self.sdk.AsyncOpenAI if async_ else self.sdk.OpenAI
        kwargs: dict[str, Any] = {
            "api_key": key,
            "organization": self.config.organization,
            "timeout": self.config.timeout_s,
            "max_retries": self.config.max_retries,
            "default_headers": self.config.extra_headers or None,
            "http_client": stainless_http_client(self.sdk, async_=async_),
        }
        if self.config.base_url:  # otherwise the SDK's own default (or OPENAI_BASE_URL)
            kwargs["base_url"] = self.config.base_url
        return cls(**kwargs)

    def _chat_kwargs(self, call: Call) -> dict[str, Any]:
        messages = [{"role": "system", "content": call.system}] if call.system else []
        messages.append({"role": "user", "content": call.prompt})
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "max_completion_tokens": call.max_tokens,
            "temperature": call.temperature,
        }
        if call.stop:
            kwargs["stop"] = call.stop
        return kwargs

    def _responses_kwargs(self, call: Call) -> dict[str, Any]:
        # The Responses API has no stop parameter: stops are applied to the text (cut_at_stop).
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "input": call.prompt,
            "max_output_tokens": call.max_tokens,
            "temperature": call.temperature,
        }
        if call.system:
            kwargs["instructions"] = call.system
        return kwargs

    @staticmethod
    def _chat_reply(completion: Any) -> Reply:
        text = completion.choices[0].message.content if completion.choices else ""
        usage = getattr(completion, "usage", None)
        return Reply(text or "", getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)

    @staticmethod
    def _responses_reply(response: Any) -> Reply:
        usage = getattr(response, "usage", None)
        return Reply(
            response.output_text or "", getattr(usage, "input_tokens", 0) or 0, getattr(usage, "output_tokens", 0) or 0
        )

    def _send(self, client: Any, call: Call) -> Reply:
        if self.config.api == "responses":
            return self._responses_reply(client.responses.create(**self._responses_kwargs(call)))
        return self._chat_reply(client.chat.completions.create(**self._chat_kwargs(call)))

    async def _acall(self, client: Any, call: Call) -> Reply:
        if self.config.api == "responses":
            return self._responses_reply(await client.responses.create(**self._responses_kwargs(call)))
        return self._chat_reply(await client.chat.completions.create(**self._chat_kwargs(call)))

    def _asend(self, client: Any, call: Call) -> Awaitable[Reply]:
        return self._acall(client, call)

    def _classify(self, exc: BaseException) -> Failure | None:
        return stainless_failure(self.sdk, exc)

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "api": self.config.api}
