"""Inference ``gemini``: ``generateContent`` through the official ``google-genai`` SDK (3.x).

The key comes from ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``. The SDK is imported when a client is
built, never at module import (the hooks stay light).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, ClassVar

from evsys_frontier._base import Call, Failure, FrontierInference, Reply, headers_of
from evsys_frontier.config import GeminiConfig

__all__ = ["GeminiInference"]

# google-genai lets httpx2's transport errors through unwrapped; recognised by class name (not imported).
_TIMEOUTS = {"TimeoutException", "ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout"}
_TRANSPORT = {"TransportError", "NetworkError", "ConnectError", "RemoteProtocolError", "ReadError"}


class GeminiInference(FrontierInference):
    name: ClassVar[str] = "gemini"
    Config: ClassVar[type[GeminiConfig]] = GeminiConfig
    sdk_module: ClassVar[str] = "google.genai"
    extra: ClassVar[str] = "gemini"

    config: GeminiConfig

    def _key_envs(self) -> list[str]:
        envs = [self.config.api_key_env]
        if self.config.fallback_api_key_env and self.config.fallback_api_key_env not in envs:
            envs.append(self.config.fallback_api_key_env)
        return envs

    def _make_client(self, key: str, *, async_: bool) -> Any:
        # One Client per use: its sync and async transports are separate, and the async one is bound to
        # the event loop that first uses it. Keep a reference: a collected Client closes its transport.
        types = self.sdk.types
        retry = types.HttpRetryOptions(attempts=self.config.max_retries + 1) if self.config.max_retries else None
        options = types.HttpOptions(
            base_url=self.config.base_url,
            api_version=self.config.api_version,
            headers=self.config.extra_headers or None,
            timeout=int(self.config.timeout_s * 1000),  # milliseconds
            retry_options=retry,
        )
        client = self.sdk.Client(api_key=key, http_options=options)
        return client.aio if async_ else client

    def _config(self, call: Call) -> Any:
        kwargs: dict[str, Any] = {"max_output_tokens": call.max_tokens, "temperature": call.temperature}
        if call.system:
            kwargs["system_instruction"] = call.system
        if call.stop:
            kwargs["stop_sequences"] = call.stop
        return self.sdk.types.GenerateContentConfig(**kwargs)

    @staticmethod
    def _reply(response: Any) -> Reply:
        parts = []
        for candidate in (response.candidates or [])[:1]:
            content = getattr(candidate, "content", None)
            parts = [p.text for p in (getattr(content, "parts", None) or []) if getattr(p, "text", None)]
        usage = getattr(response, "usage_metadata", None)
        return Reply(
            "".join(parts),
            getattr(usage, "prompt_token_count", 0) or 0,
            getattr(usage, "candidates_token_count", 0) or 0,
        )

    def _send(self, client: Any, call: Call) -> Reply:
        response = client.models.generate_content(
            model=self.config.model, contents=call.prompt, config=self._config(call)
        )
        return self._reply(response)

    async def _acall(self, client: Any, call: Call) -> Reply:
        response = await client.models.generate_content(
            model=self.config.model, contents=call.prompt, config=self._config(call)
        )
        return self._reply(response)

    def _asend(self, client: Any, call: Call) -> Awaitable[Reply]:
        return self._acall(client, call)

    def _classify(self, exc: BaseException) -> Failure | None:
        if isinstance(exc, self.sdk.errors.APIError):
            status = exc.code if isinstance(exc.code, int) else None
            return Failure(status, headers_of(getattr(exc, "response", None)), str(exc.message or exc))
        names = {cls.__name__ for cls in type(exc).__mro__}
        if names & _TIMEOUTS:
            return Failure(None, {}, "no answer within timeout_s", timeout=True)
        if names & _TRANSPORT:
            return Failure(None, {}, str(exc))
        return None

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "api_version": self.config.api_version}
