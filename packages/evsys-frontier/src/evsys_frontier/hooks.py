"""evsys-frontier's hooks (entry point ``frontier``). Imports only evsys_sdk: the client modules load
at the first registry look-up, and import their provider SDK only when a client is built, so every
kind registers (and `evsys list` works) whether or not the SDKs are installed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsys_sdk.hookspecs import hookimpl

if TYPE_CHECKING:
    from evsys_sdk.registry import Registry


@hookimpl
def evsys_register_inference_clients(registry: Registry[Any]) -> None:
    from evsys_frontier.claude import ClaudeInference
    from evsys_frontier.gemini import GeminiInference
    from evsys_frontier.openai_inference import OpenAIInference

    for cls in (ClaudeInference, OpenAIInference, GeminiInference):
        registry.add(cls)


@hookimpl
def evsys_register_verifiers(registry: Registry[Any]) -> None:
    from evsys_frontier.judge import LLMJudge, register_judge_fn

    registry.add(LLMJudge)
    register_judge_fn()  # Harbor tasks name it as an in-process fn: {"fn_name": "llm_judge", ...}
