"""Every test runs under core's network guard, with fake keys in the environment and a fake server."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from evsys_frontier.testing import FakeProviderServer

os.environ.setdefault("EVSYS_STRICT_PLUGINS", "1")

# Distinctive values, so a leak is found by a plain substring search.
KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-LEAKCHECK-anthropic-0123456789",
    "OPENAI_API_KEY": "sk-LEAKCHECK-openai-0123456789",
    "GEMINI_API_KEY": "AIza-LEAKCHECK-gemini-0123456789",
}
# (registered kind, extra params, fake-server provider, key env var)
PROVIDERS: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "claude": ("claude", {}, "anthropic", "ANTHROPIC_API_KEY"),
    "openai": ("openai", {}, "openai_chat", "OPENAI_API_KEY"),
    "openai-responses": ("openai", {"api": "responses"}, "openai_responses", "OPENAI_API_KEY"),
    "gemini": ("gemini", {}, "gemini", "GEMINI_API_KEY"),
}
Build = Callable[..., Any]


def base_url(kind: str, server: FakeProviderServer) -> str:
    return server.openai_url if kind == "openai" else server.url


def build_client(provider: str, server: FakeProviderServer, **params: Any) -> Any:
    from evsys_sdk.plugins.registry import registry

    kind, extra, _, _ = PROVIDERS[provider]
    return registry("inference_client").get(kind)(**{"base_url": base_url(kind, server), **extra, **params})


@pytest.fixture(autouse=True)
def _guarded(no_network: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for env, value in KEYS.items():
        monkeypatch.setenv(env, value)
    for env in ("GOOGLE_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(env, raising=False)
    yield


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(api_key=None) as srv:
        yield srv


@pytest.fixture(params=list(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name
