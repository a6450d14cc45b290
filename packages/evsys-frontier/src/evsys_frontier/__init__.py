"""evsys-frontier: Claude, OpenAI and Gemini inference clients on the official SDKs, and LLM judges.

Registers inference kinds ``claude``, ``openai``, ``gemini`` and the verifier ``llm_judge`` (also an
in-process verifier fn of the same name). Names resolve lazily: importing this package imports no
provider SDK; ``evsys_frontier.testing`` has a loopback fake of every provider's HTTP API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evsys_sdk.base.lazy import lazy_getattr

if TYPE_CHECKING:
    from evsys_frontier.claude import ClaudeInference
    from evsys_frontier.errors import (
        FrontierError,
        MissingAPIKeyError,
        MissingSDKError,
        ProviderAPIError,
        UnsupportedParameterError,
    )
    from evsys_frontier.gemini import GeminiInference
    from evsys_frontier.judge import LLMJudge
    from evsys_frontier.openai_inference import OpenAIInference

__version__ = "0.1.0"

_WHERE = {
    "ClaudeInference": "evsys_frontier.claude",
    "OpenAIInference": "evsys_frontier.openai_inference",
    "GeminiInference": "evsys_frontier.gemini",
    "LLMJudge": "evsys_frontier.judge",
    "FrontierError": "evsys_frontier.errors",
    "MissingAPIKeyError": "evsys_frontier.errors",
    "MissingSDKError": "evsys_frontier.errors",
    "ProviderAPIError": "evsys_frontier.errors",
    "UnsupportedParameterError": "evsys_frontier.errors",
}
__all__ = [
    "ClaudeInference",
    "FrontierError",
    "GeminiInference",
    "LLMJudge",
    "MissingAPIKeyError",
    "MissingSDKError",
    "OpenAIInference",
    "ProviderAPIError",
    "UnsupportedParameterError",
]


__getattr__ = lazy_getattr(__name__, _WHERE)


def __dir__() -> list[str]:
    return __all__
