"""What the three frontier clients share: SDK and key resolution, sampling defaults, stop handling,
usage accounting, per-event-loop async SDK clients, and the mapping of SDK errors.

A provider subclass supplies ``_make_client(key, async_)``, ``_send(client, call)`` (sync) and
``_asend`` (async) returning a ``_Reply``, and ``_classify(exc)`` describing an SDK exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import importlib.util
import os
import threading
import urllib.parse
import urllib.request
import weakref
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

from evsys_frontier.config import FrontierConfig
from evsys_frontier.errors import (
    MissingAPIKeyError,
    MissingSDKError,
    ProviderAPIError,
    UnsupportedParameterError,
    provider_error,
)


@dataclass(frozen=True)
class Call:
    """One generation, with the config's defaults applied."""

    prompt: str
    max_tokens: int
    temperature: float
    stop: list[str]  # non-empty strings only
    system: str | None


@dataclass(frozen=True)
class Reply:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Failure:
    """An SDK exception, described provider-neutrally (see ``errors.provider_error``)."""

    status: int | None
    headers: dict[str, str]
    message: str
    timeout: bool = False


class _Secret:
    """Holds the key for redaction; its repr never shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<redacted>"


async def _hold(client: Any, resources: list[Any]) -> AsyncIterator[Any]:
    try:
        yield client
    finally:
        for resource in resources:
            closer = getattr(resource, "aclose", None) or getattr(resource, "close", None)
            if callable(closer):
                with contextlib.suppress(Exception):  # best effort: the loop is shutting down
                    await closer()


@functools.cache
def tls_context() -> Any:
    """The TLS context every SDK client of this process shares: exactly the SDKs' default (httpx2's, which
    honours SSL_CERT_FILE/SSL_CERT_DIR), built once. Each build reads the CA bundle (~30 ms), and the SDKs
    would build one (gemini: three) per client, i.e. per event loop on the async path."""
    import httpx2  # every supported SDK version depends on it

    return httpx2.create_ssl_context()


def has_aiohttp() -> bool:
    """Whether the SDKs' ``aiohttp`` transport can be used (their ``aiohttp`` extra, which ours pull in):
    it costs a fraction of httpx2's CPU per request, and CPU decides throughput at high concurrency."""
    return importlib.util.find_spec("aiohttp") is not None


def env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY, ...) names for ``url``, if any."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to the first stop string: providers may return it, or (Responses API) not stop at all."""
    cut = len(text)
    for s in stop:
        i = text.find(s) if s else -1
        if 0 <= i < cut:
            cut = i
    return text[:cut]


class FrontierInference:
    """Base of ``claude``, ``openai`` and ``gemini``: ``generate``, ``agenerate``, ``generate_batch``."""

    name: ClassVar[str]
    Config: ClassVar[type[FrontierConfig]]
    sdk_module: ClassVar[str]  # imported at construction, e.g. "anthropic"
    extra: ClassVar[str]  # the evsys-frontier extra that installs it

    config: FrontierConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.sdk = self._import_sdk()
        self._key = _Secret(self._resolve_key())
        self._check_default_temperature()
        self._client = self._make_client(self._key.value, async_=False)
        # Async SDK clients hold connection pools bound to one event loop; the eval engine runs a fresh
        # loop per call, so each loop gets its own client.
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._usage = {"requests": 0, "input_tokens": 0, "output_tokens": 0}
        self._auth_failure: ProviderAPIError | None = None

    # construction

    @classmethod
    def install_command(cls) -> str:
        from evsys_sdk.base.install_hints import pip_install

        return pip_install(f"evsys-frontier[{cls.extra}]")

    def _import_sdk(self) -> ModuleType:
        try:
            return importlib.import_module(self.sdk_module)
        except ImportError as exc:
            raise MissingSDKError(
                f"inference '{self.name}' needs the {self.sdk_module} SDK, which is not installed: "
                f"{self.install_command()}"
            ) from exc

    def _key_envs(self) -> list[str]:
        return [self.config.api_key_env]

    def _resolve_key(self) -> str:
        envs = self._key_envs()
        for env in envs:
            value = os.environ.get(env, "").strip()
            if value:
                return value
        names = " or ".join(envs)
        raise MissingAPIKeyError(
            f"inference '{self.name}' needs an API key: set the environment variable {names} "
            f"(or point api_key_env at the variable holding it)"
        )

    def _make_client(self, key: str, *, async_: bool) -> Any:
        raise NotImplementedError

    def _make_async_client(self, key: str) -> tuple[Any, list[Any]]:
        """The SDK's async client for the running event loop, and what to close when that loop ends."""
        client = self._make_client(key, async_=True)
        return client, [client]

    def _accepts_temperature(self) -> bool:
        return True

    def _check_default_temperature(self) -> None:
        if not self._accepts_temperature() and self.config.default_temperature != 0.0:
            raise UnsupportedParameterError(self._temperature_message(self.config.default_temperature))

    def _temperature_message(self, value: float) -> str:
        version = getattr(self.sdk, "__version__", "?")
        return (
            f"inference '{self.name}': the installed {self.sdk_module} SDK ({version}) has no temperature "
            f"parameter, so temperature={value} cannot be sent; leave it at 0.0 (not sent: the provider's "
            "default applies), or set temperature_in_body: true if your endpoint still accepts one"
        )

    # calls

    def _call(self, prompt: str, max_tokens: int | None, temperature: float | None, stop: list[str] | None) -> Call:
        temp = self.config.default_temperature if temperature is None else float(temperature)
        if not self._accepts_temperature() and temp != self.config.default_temperature:
            raise UnsupportedParameterError(self._temperature_message(temp))
        return Call(
            prompt=prompt,
            max_tokens=self.config.default_max_tokens if max_tokens is None else int(max_tokens),
            temperature=temp,
            stop=[s for s in stop or [] if s],
            system=self.config.system_prompt,
        )

    def _send(self, client: Any, call: Call) -> Reply:
        raise NotImplementedError

    def _asend(self, client: Any, call: Call) -> Awaitable[Reply]:
        raise NotImplementedError

    def _classify(self, exc: BaseException) -> Failure | None:
        """Describe an SDK exception, or None when it is not the SDK's (a bug: re-raised as is)."""
        raise NotImplementedError

    def _label(self) -> str:
        return f"{self.name} ({self.config.model})"

    def _error(self, exc: BaseException) -> BaseException:
        failure = self._classify(exc)
        if failure is None:
            return exc
        error = provider_error(
            label=self._label(),
            status=failure.status,
            headers=failure.headers,
            provider_error_name=type(exc).__name__,
            provider_message=failure.message,
            timeout=failure.timeout,
            secrets=[self._key.value],
        )
        if failure.status == 401:  # a wrong key stays wrong: later calls fail without a request
            self._auth_failure = error
        return error

    def _done(self, reply: Reply, call: Call) -> str:
        with self._lock:
            self._usage["requests"] += 1
            self._usage["input_tokens"] += reply.input_tokens
            self._usage["output_tokens"] += reply.output_tokens
        return cut_at_stop(reply.text, call.stop)

    def _check_auth(self) -> None:
        if self._auth_failure is not None:
            raise type(self._auth_failure)(
                str(self._auth_failure),
                status_code=self._auth_failure.status_code,
                provider_error=self._auth_failure.provider_error,
                provider_message=self._auth_failure.provider_message,
            )

    def generate(
        self,
        *,
        prompt: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
    ) -> str:
        """One completion; ``max_tokens``/``temperature`` default to the config's. Provider errors raise
        a ``ProviderAPIError`` (retried by the eval engine when transient)."""
        call = self._call(prompt, max_tokens, temperature, stop)
        self._check_auth()
        try:
            reply = self._send(self._client, call)
        except Exception as exc:
            error = self._error(exc)
            if error is exc:
                raise
        else:
            return self._done(reply, call)
        # Raised outside the except block: the SDK exception (whose request carries the key) is neither
        # the cause nor the context of ours.
        raise error

    async def agenerate(
        self,
        *,
        prompt: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
    ) -> str:
        """``generate`` on the SDK's async client: the eval engine keeps many of these in flight."""
        call = self._call(prompt, max_tokens, temperature, stop)
        self._check_auth()
        client = await self._async_client()
        try:
            reply = await self._asend(client, call)
        except Exception as exc:
            error = self._error(exc)
            if error is exc:
                raise
        else:
            return self._done(reply, call)
        raise error

    async def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            held = self._aclients.get(loop)
            if held is None:
                client, resources = self._make_async_client(self._key.value)
                # An async generator started on this loop is closed by the loop's shutdown_asyncgens()
                # (asyncio.run does that), which closes the client while its loop still runs.
                holder = _hold(client, resources)
                held = self._aclients[loop] = (client, holder)
            else:
                holder = None
        if holder is not None:
            await holder.__anext__()
        return held[0]

    def generate_batch(
        self,
        *,
        prompts: list[str],
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
    ) -> list[str]:
        """Completions in prompt order, ``max_concurrency`` requests in flight; the first error raises."""
        if not prompts:
            return []
        self._call("", max_tokens, temperature, stop)  # refuse bad sampling params before any request
        workers = min(self.config.max_concurrency, len(prompts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"evsys-{self.name}") as pool:
            futures = [
                pool.submit(self.generate, prompt=p, max_tokens=max_tokens, temperature=temperature, stop=stop)
                for p in prompts
            ]
            return [f.result() for f in futures]

    # bookkeeping

    @property
    def usage(self) -> dict[str, int]:
        """Requests answered and tokens used (as the provider reports them) since construction."""
        with self._lock:
            return dict(self._usage)

    def usage_metrics(self) -> dict[str, float]:
        """``requests``, ``input_tokens``, ``output_tokens`` as floats: a benchmark records what a run used of
        them as ``usage/<name>`` (it adds the prefix)."""
        return {k: float(v) for k, v in self.usage.items()}

    def reset_usage(self) -> None:
        with self._lock:
            self._usage = dict.fromkeys(self._usage, 0)

    def cache_identity(self) -> dict[str, Any]:
        """What makes two clients give the same completions (for the eval completion cache)."""
        c = self.config
        return {"kind": self.name, "model": c.model, "base_url": c.base_url, "system_prompt": c.system_prompt}

    def close(self) -> None:
        """Close the sync SDK client's connections (async ones go with their event loop)."""
        closer = getattr(self._client, "close", None)
        if callable(closer):
            closer()

    def __enter__(self) -> FrontierInference:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.config.model!r}, base_url={self.config.base_url!r})"

    def __getstate__(self) -> Any:
        raise TypeError(f"{type(self).__name__} holds an API key and live connections: it cannot be pickled")


def headers_of(response: Any) -> dict[str, str]:
    headers = getattr(response, "headers", None)
    if headers is None:
        return {}
    try:
        return {str(k): str(v) for k, v in headers.items()}
    except AttributeError:
        return {}
