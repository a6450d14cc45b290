"""Inference ``claude``: Anthropic's Messages API through the official ``anthropic`` SDK (2.x).

The SDK is imported when a client is built, never at module import (the hooks stay light).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import Any, ClassVar

from evsys_frontier._base import Call, Failure, FrontierInference, Reply, has_aiohttp, headers_of, tls_context
from evsys_frontier.config import ClaudeConfig

__all__ = ["ClaudeInference"]


class ClaudeInference(FrontierInference):
    name: ClassVar[str] = "claude"
    Config: ClassVar[type[ClaudeConfig]] = ClaudeConfig
    sdk_module: ClassVar[str] = "anthropic"
    extra: ClassVar[str] = "anthropic"

    config: ClaudeConfig

    def _make_client(self, key: str, *, async_: bool) -> Any:
        cls = self.sdk.AsyncAnthropic if async_ else self.sdk.Anthropic
        return cls(
            api_key=key,
            base_url=self.config.base_url,
            timeout=self.config.timeout_s,
            max_retries=self.config.max_retries,
            default_headers=self.config.extra_headers or None,
            http_client=stainless_http_client(self.sdk, async_=async_),
        )

    def _sdk_has_temperature(self) -> bool:
        # anthropic 2.x dropped the parameter; 0.x/1.x had it. Read once: inspect is slow per call.
        has = getattr(self, "_has_temperature", None)
        if has is None:
            has = self._has_temperature = (
                "temperature" in inspect.signature(self.sdk.resources.Messages.create).parameters
            )
        return has

    def _accepts_temperature(self) -> bool:
        return self.config.temperature_in_body or self._sdk_has_temperature()

    def _kwargs(self, call: Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": call.max_tokens,
            "messages": [{"role": "user", "content": call.prompt}],
        }
        if call.system:
            kwargs["system"] = call.system
        if call.stop:
            kwargs["stop_sequences"] = call.stop
        if self.config.temperature_in_body:
            kwargs["extra_body"] = {"temperature": call.temperature}
        elif self._sdk_has_temperature():
            kwargs["temperature"] = call.temperature
        return kwargs

    @staticmethod
    def _reply(message: Any) -> Reply:
        text = "".join(getattr(b, "text", "") for b in message.content if getattr(b, "type", None) == "text")
        usage = getattr(message, "usage", None)
        return Reply(text, getattr(usage, "input_tokens", 0) or 0, getattr(usage, "output_tokens", 0) or 0)

    def _send(self, client: Any, call: Call) -> Reply:
        return self._reply(client.messages.create(**self._kwargs(call)))

    async def _acall(self, client: Any, call: Call) -> Reply:
        return self._reply(await client.messages.create(**self._kwargs(call)))

    def _asend(self, client: Any, call: Call) -> Awaitable[Reply]:
        return self._acall(client, call)

    def _classify(self, exc: BaseException) -> Failure | None:
        return stainless_failure(self.sdk, exc)


def stainless_http_client(sdk: Any, *, async_: bool) -> Any:
    """The SDK's own default HTTP client (its timeouts, limits, proxies) over the shared TLS context;
    async on aiohttp when installed. Anthropic and OpenAI share this (both are Stainless SDKs)."""
    if not async_:
        return sdk.DefaultHttpxClient(verify=tls_context())
    cls = sdk.DefaultAioHttpClient if has_aiohttp() else sdk.DefaultAsyncHttpxClient
    return cls(verify=tls_context())


def stainless_failure(sdk: Any, exc: BaseException) -> Failure | None:
    """Anthropic and OpenAI share one SDK generator (Stainless), hence one error shape."""
    if isinstance(exc, sdk.APIStatusError):
        body = getattr(exc, "body", None)
        message = getattr(exc, "api_message", None)
        if not message and isinstance(body, dict):
            inner = body.get("error", body)
            message = inner.get("message") if isinstance(inner, dict) else None
        return Failure(exc.status_code, headers_of(exc.response), str(message or exc))
    if isinstance(exc, sdk.APITimeoutError) and not _refused(exc):
        return Failure(None, {}, "no answer within timeout_s", timeout=True)
    if isinstance(exc, sdk.APIConnectionError):  # a refused "timeout" says what happened, not "timed out"
        return Failure(None, {}, "Connection error." if isinstance(exc, sdk.APITimeoutError) else str(exc))
    return None


def _refused(exc: BaseException) -> bool:
    """A connection refused or reset somewhere under ``exc``: openai 3.54's aiohttp transport reports
    those as timeouts (its map sends aiohttp's ClientConnectionError to ConnectTimeout)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
