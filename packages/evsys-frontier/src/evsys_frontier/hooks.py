"""evsys-frontier's hooks (entry point ``frontier``). Imports only evsys_sdk: the client modules load
at the first registry look-up, and import their provider SDK only when a client is built, so every
kind registers (and `evsys list` works) whether or not the SDKs are installed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsys_sdk.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from evsys_sdk.plugins.registry import Registry


@hookimpl
def evsys_register_inference_clients(registry: Registry[Any]) -> None:
    registry.add_lazy("claude", "evsys_frontier.claude:ClaudeInference")
    registry.add_lazy("openai", "evsys_frontier.openai_inference:OpenAIInference")
    registry.add_lazy("gemini", "evsys_frontier.gemini:GeminiInference")


@hookimpl
def evsys_register_verifiers(registry: Registry[Any]) -> None:
    from evsys_sdk.builtins.verifier_fns import register

    registry.add_lazy("llm_judge", "evsys_frontier.judge:LLMJudge")
    # Harbor tasks name it as an in-process fn: {"fn_name": "llm_judge", ...}
    register("llm_judge", "evsys_frontier.judge:llm_judge_fn")
