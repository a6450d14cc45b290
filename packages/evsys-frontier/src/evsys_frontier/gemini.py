"""Inference ``gemini``: ``generateContent`` through the official ``google-genai`` SDK (3.x).

The key comes from ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``. The SDK is imported when a client is
built, never at module import (the hooks stay light).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, ClassVar

from evsys_frontier._base import (
    Call,
    Failure,
    FrontierInference,
    Reply,
    env_proxy,
    has_aiohttp,
    headers_of,
    tls_context,
)
from evsys_frontier.config import GeminiConfig

__all__ = ["GeminiInference"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"  # the SDK's, for the Gemini Developer API

# google-genai lets httpx2's and aiohttp's transport errors through unwrapped; recognised by class name
# (neither is imported). aiohttp signals timeouts with the builtin TimeoutError.
_TIMEOUTS = {"TimeoutException", "ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout", "TimeoutError"}
_TRANSPORT = {
    "TransportError",
    "NetworkError",
    "ConnectError",
    "RemoteProtocolError",
    "ReadError",
    "ClientConnectionError",
    "ClientPayloadError",
}


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

    def _make_client(self, key: str, *, async_: bool, aiohttp_session: Any = None) -> Any:
        # One Client per use: its sync and async transports are separate, and the async one is bound to
        # the event loop that first uses it. Keep a reference: a collected Client closes its transport.
        types = self.sdk.types
        # Always explicit: without retry options the SDK's aiohttp path retries a failed connection once
        # on its own, after sleeping 1-10 s.
        retry = types.HttpRetryOptions(attempts=self.config.max_retries + 1)
        options = types.HttpOptions(
            base_url=self.config.base_url,
            api_version=self.config.api_version,
            headers=self.config.extra_headers or None,
            timeout=int(self.config.timeout_s * 1000),  # milliseconds
            retry_options=retry,
            # The shared TLS context for httpx2 (``verify``) and aiohttp (``ssl``, used when installed).
            client_args={"verify": tls_context()},
            async_client_args={"verify": tls_context(), "ssl": tls_context()},
            aiohttp_client=aiohttp_session,
        )
        client = self.sdk.Client(api_key=key, http_options=options)
        return client.aio if async_ else client

    def _make_async_client(self, key: str) -> tuple[Any, list[Any]]:
        if not has_aiohttp():
            return super()._make_async_client(key)
        import aiohttp

        # Our own session: the SDK's trusts the environment, so aiohttp resolves proxies and reads ~/.netrc
        # on a worker thread for every request (two thread hops each; a third of the throughput at C=16).
        # The environment's proxy is resolved once here instead; the SDK leaves a given session open.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),  # the eval engine bounds concurrency; TLS: the SDK passes ours
            proxy=env_proxy(self.config.base_url or DEFAULT_BASE_URL),
        )
        client = self._make_client(key, async_=True, aiohttp_session=session)
        return client, [client, session]

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
