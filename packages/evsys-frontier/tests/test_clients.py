"""Each official SDK driven against the fake server: wire format, auth, sampling params, usage, errors."""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import pytest
from conftest import KEYS, PROVIDERS, build_client
from pydantic import ValidationError

from evsys_frontier.errors import (
    MissingAPIKeyError,
    MissingSDKError,
    ProviderConnectionError,
    ProviderRateLimitError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    UnsupportedParameterError,
)
from evsys_frontier.testing import FakeProviderServer
from evsys_sdk.eval.retry import is_transient, retry_after_of
from evsys_sdk.plugins.registry import registry


def _wire_key(provider: str, headers: dict[str, str]) -> str:
    if provider == "gemini":
        return headers["x-goog-api-key"]
    return headers["authorization"].removeprefix("Bearer ")


def test_success_puts_prompt_system_stop_and_auth_on_the_wire(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server, system_prompt="Answer tersely.", model="model-x")
    text = client.generate(prompt="the cat sat on the mat", max_tokens=50, stop=["on", ""])
    assert text == "You said: the cat sat "
    [req] = server.requests
    _, _, wire, env = PROVIDERS[provider]
    assert req.provider == wire
    assert _wire_key(provider, req.headers) == KEYS[env]
    body = req.json
    if wire == "anthropic":
        assert body["system"] == "Answer tersely." and body["stop_sequences"] == ["on"]
        assert body["max_tokens"] == 50 and body["model"] == "model-x"
        assert "temperature" not in body  # anthropic 2.x has no temperature: the default is not sent
        assert req.headers["anthropic-version"]
    elif wire == "openai_chat":
        assert body["messages"][0] == {"role": "system", "content": "Answer tersely."}
        assert body["stop"] == ["on"] and body["max_completion_tokens"] == 50 and body["temperature"] == 0.0
    elif wire == "openai_responses":
        assert body["instructions"] == "Answer tersely." and body["max_output_tokens"] == 50
        assert "stop" not in body  # no such parameter: the stop is applied to the text
    else:
        assert req.path == "/v1/models/model-x:generateContent"
        config = body["generationConfig"]
        assert config["stopSequences"] == ["on"] and config["maxOutputTokens"] == 50
        assert body["systemInstruction"]["parts"][0]["text"] == "Answer tersely."


def test_config_defaults_apply_when_a_call_gives_none(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server, default_max_tokens=3)
    assert client.generate(prompt="one two three four five") == "You said: one"
    assert client.usage == {"requests": 1, "input_tokens": 5, "output_tokens": 3}
    client.generate(prompt="six seven", max_tokens=10)
    assert client.usage["requests"] == 2 and client.usage["output_tokens"] == 3 + 4
    assert client.usage_metrics()["output_tokens"] == 7.0
    client.reset_usage()
    assert client.usage == {"requests": 0, "input_tokens": 0, "output_tokens": 0}


def test_async_and_batch_paths(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server)

    async def both() -> list[str]:
        return list(await asyncio.gather(*(client.agenerate(prompt=f"p{i}", stop=["zz"]) for i in range(4))))

    assert asyncio.run(both()) == [f"You said: p{i}" for i in range(4)]
    assert asyncio.run(both())[0] == "You said: p0"  # a second event loop gets its own async client
    assert client.generate_batch(prompts=["a", "b", "c"], max_tokens=4) == ["You said: a", "You said: b", "You said: c"]
    assert client.generate_batch(prompts=[]) == []
    assert client.usage["requests"] == 11


def test_temperature_is_sent_where_the_sdk_accepts_it(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server)
    if provider == "claude":
        with pytest.raises(UnsupportedParameterError, match=r"no temperature parameter.*temperature=0.7"):
            client.generate(prompt="hi", temperature=0.7)
        with pytest.raises(UnsupportedParameterError):
            build_client(provider, server, default_temperature=0.5)
        assert server.requests == []  # refused before any request
        body_client = build_client(provider, server, temperature_in_body=True)
        body_client.generate(prompt="hi", temperature=0.7)
        assert server.requests[-1].json["temperature"] == 0.7
        return
    client.generate(prompt="hi", temperature=0.7)
    body = server.requests[-1].json
    sent = body["generationConfig"]["temperature"] if provider == "gemini" else body["temperature"]
    assert sent == 0.7


def test_base_url_rules() -> None:
    openai_cls = registry("inference_client").get("openai")
    with pytest.raises(ValidationError, match=r"must end in /v1 \(e.g. http://127.0.0.1:9/v1\)"):
        openai_cls.Config(base_url="http://127.0.0.1:9")
    assert openai_cls.Config(base_url="http://127.0.0.1:9/v1/").base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(ValidationError, match="must not end in /v1"):
        registry("inference_client").get("claude").Config(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValidationError, match="must not end in an API version"):
        registry("inference_client").get("gemini").Config(base_url="http://127.0.0.1:9/v1beta")
    with pytest.raises(ValidationError, match="http"):
        openai_cls.Config(base_url="127.0.0.1:9/v1")


def test_gemini_key_falls_back_to_google_api_key(server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key-0123")
    build_client("gemini", server).generate(prompt="hi")
    assert server.requests[-1].headers["x-goog-api-key"] == "google-key-0123"


def test_gemini_system_instruction_alias_and_api_version(server: FakeProviderServer) -> None:
    client = build_client("gemini", server, system_instruction="Be kind.", api_version="v1beta")
    client.generate(prompt="hi")
    req = server.requests[-1]
    assert req.path.startswith("/v1beta/models/") and req.json["systemInstruction"]["parts"][0]["text"] == "Be kind."
    with pytest.raises(ValidationError, match="not both"):
        build_client("gemini", server, system_instruction="a", system_prompt="b")


def test_missing_key_names_the_env_var(
    provider: str, server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, _, env = PROVIDERS[provider]
    monkeypatch.delenv(env)
    expected = "GEMINI_API_KEY or GOOGLE_API_KEY" if provider == "gemini" else env
    with pytest.raises(MissingAPIKeyError, match=f"set the environment variable {expected} "):
        build_client(provider, server)
    with pytest.raises(RuntimeError, match="MY_KEY"):  # BEHAVIOR 1.16: a RuntimeError naming the variable
        build_client(provider, server, api_key_env="MY_KEY")


def test_missing_sdk_raises_the_install_line(
    provider: str, server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = PROVIDERS[provider][0]
    cls = registry("inference_client").get(kind)
    monkeypatch.setitem(sys.modules, cls.sdk_module, None)  # `import <sdk>` now raises ImportError
    extra = {"claude": "anthropic", "openai": "openai", "gemini": "gemini"}[kind]
    with pytest.raises(MissingSDKError) as info:
        build_client(provider, server)
    assert f'pip install "evsys-frontier[{extra}]"' in str(info.value)
    assert isinstance(info.value, ImportError)


def test_4xx_fails_fast_with_the_providers_message(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server)
    server.fail(400, message="model 'nope' does not exist")
    with pytest.raises(ProviderRequestError, match=r"HTTP 400 .*model 'nope' does not exist") as info:
        client.generate(prompt="hi")
    assert info.value.status_code == 400 and not is_transient(info.value)
    assert len(server.requests) == 1


def test_429_and_5xx_map_to_transient_errors_with_retry_after(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server)
    server.fail(429, retry_after=7)
    with pytest.raises(ProviderRateLimitError) as info:
        client.generate(prompt="hi")
    assert is_transient(info.value) and retry_after_of(info.value) == 7.0
    for status in (500, 503, 529):
        server.fail(status, retry_after_ms=250)
        with pytest.raises(ProviderServerError) as err:
            client.generate(prompt="hi")
        assert err.value.status_code == status and is_transient(err.value) and retry_after_of(err.value) == 0.25
    assert client.generate(prompt="ok") == "You said: ok"


def test_a_wrong_key_fails_once_then_without_requests(provider: str) -> None:
    with FakeProviderServer(api_key="the-right-key") as srv:
        client = build_client(provider, srv)
        for _ in range(2):
            with pytest.raises(ProviderRequestError, match="HTTP 401"):
                client.generate(prompt="hi")
        assert len(srv.requests) == 1


def test_timeout(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server, timeout_s=0.2)
    server.delay(0.6)
    start = time.monotonic()
    with pytest.raises(ProviderTimeoutError, match="timed out") as info:
        client.generate(prompt="hi")
    assert time.monotonic() - start < 0.55
    assert isinstance(info.value, TimeoutError) and is_transient(info.value)


def test_async_path_maps_timeouts_and_unreachable_servers(provider: str, server: FakeProviderServer) -> None:
    """The async clients run on aiohttp (the SDKs' extra): its errors map like httpx2's, and nothing
    retries behind the engine's back."""
    client = build_client(provider, server, timeout_s=0.2)
    server.delay(0.6)
    start = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as info:
        asyncio.run(client.agenerate(prompt="hi"))
    assert time.monotonic() - start < 0.55 and is_transient(info.value)

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    kind, extra, _, _ = PROVIDERS[provider]
    url = f"http://127.0.0.1:{port}" + ("/v1" if kind == "openai" else "")
    dead = registry("inference_client").get(kind)(base_url=url, **extra)
    start = time.monotonic()
    with pytest.raises(ProviderConnectionError) as err:
        asyncio.run(dead.agenerate(prompt="hi"))
    assert time.monotonic() - start < 0.5 and is_transient(err.value) and "timed out" not in str(err.value)


def test_the_environments_proxy_carries_both_paths(
    provider: str, server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY is honoured on the sync and the async path (the fake answers as a forward proxy)."""
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    kind, extra, _, _ = PROVIDERS[provider]
    url = "http://provider.invalid" + ("/v1" if kind == "openai" else "")
    client = registry("inference_client").get(kind)(base_url=url, **extra)
    assert client.generate(prompt="sync") == "You said: sync"
    assert asyncio.run(client.agenerate(prompt="async")) == "You said: async"
    assert [r.path.startswith("http://provider.invalid/") for r in server.requests] == [True, True]


def test_async_path_without_aiohttp(provider: str, server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """An SDK installed without its aiohttp extra: the async path falls back to the SDK's httpx2 client."""
    import evsys_frontier.claude
    import evsys_frontier.gemini

    for module in (evsys_frontier.claude, evsys_frontier.gemini):
        monkeypatch.setattr(module, "has_aiohttp", lambda: False)
    client = build_client(provider, server)
    assert asyncio.run(client.agenerate(prompt="hi")) == "You said: hi"


def test_async_clients_use_aiohttp(provider: str, server: FakeProviderServer) -> None:
    client = build_client(provider, server)

    async def transport() -> str:
        aclient = await client._async_client()
        if provider == "gemini":
            return "aiohttp" if aclient._api_client._use_aiohttp() else "httpx2"
        return type(aclient._client._transport).__module__

    assert "aiohttp" in asyncio.run(transport())


@pytest.mark.parametrize("provider_name", ["claude", "openai"])
def test_sdk_retries_when_asked(provider_name: str, server: FakeProviderServer) -> None:
    """max_retries > 0 hands retries to the SDK (for direct calls outside the eval engine)."""
    client = build_client(provider_name, server, max_retries=2)
    server.fail(529 if provider_name == "claude" else 500, retry_after_ms=5).fail(429, retry_after_ms=5)
    assert client.generate(prompt="hi") == "You said: hi"
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == ["0", "1", "2"]


def test_gemini_sdk_retry_options(server: FakeProviderServer) -> None:
    client = build_client("gemini", server, max_retries=3)
    options = client._client._api_client._http_options
    assert options.retry_options.attempts == 4 and options.timeout == 60_000


def test_keys_are_redacted_from_errors_reports_and_reprs(provider: str, server: FakeProviderServer) -> None:
    from evsys_sdk.eval.cache import client_identity
    from evsys_sdk.eval.engine import GenerationRequest, generate_all
    from evsys_sdk.eval.retry import RetryReport

    key = KEYS[PROVIDERS[provider][3]]
    client = build_client(provider, server)
    server.fail(401, message=f"Incorrect API key provided: {key}.")
    with pytest.raises(ProviderRequestError) as info:
        client.generate(prompt="hi")
    error = info.value
    assert "Incorrect API key provided: ***." in str(error) and key not in str(error)
    assert error.__cause__ is None and error.__context__ is None  # the SDK error's request holds the key
    fresh, report = build_client(provider, server), RetryReport()
    server.fail(403, message=f"key {key} may not use this model")
    generate_all(fresh, [GenerationRequest("hi")], report=report)
    for text in (str(report.as_dict()), repr(client), str(client_identity(client)), str(client.config.model_dump())):
        assert key not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        import pickle

        pickle.dumps(client)
