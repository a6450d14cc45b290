"""Prompt helpers for the tool-search eval and the slug extractor its scoring uses."""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "DEFAULT_SYSTEM",
    "DEFAULT_SYSTEM_NO_THINK",
    "extract_predicted_slug",
    "qwen3_chat_template_prompt",
    "qwen_chat_prompt",
]

DEFAULT_SYSTEM = (
    "You are a tool-search assistant. Given a user's query, choose the single tool that best serves it. "
    "First reason briefly inside <think>...</think>, then give the tool's slug (for example "
    "GITHUB_CREATE_ISSUE) inside <answer>...</answer>."
)
DEFAULT_SYSTEM_NO_THINK = (
    "You are a tool-search assistant. Given a user's query, choose the single tool that best serves it. "
    "Reply with the tool's slug (for example GITHUB_CREATE_ISSUE) inside <answer>...</answer> and nothing else."
)

_ANSWER = re.compile(r"<answer>\s*(\w+)\s*</answer>")
_CAPS = re.compile(r"\b[A-Z][A-Z0-9_]{6,}\b")


def qwen_chat_prompt(query: str, *, system: str = DEFAULT_SYSTEM) -> str:
    """A hand-rolled Qwen (ChatML) prompt: system, user ``Query: <query>``, then the assistant opener."""
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nQuery: {query}<|im_end|>\n<|im_start|>assistant\n"
    )


def qwen3_chat_template_prompt(
    query: str, *, tokenizer: Any, system: str = DEFAULT_SYSTEM, enable_thinking: bool | None = None
) -> str:
    """The same conversation rendered by the model's own chat template (``tokenizer`` may also be a
    client exposing ``_tokenizer``); ``enable_thinking`` is passed only when set. Use as a prompt
    builder through ``functools.partial(qwen3_chat_template_prompt, tokenizer=tok)``."""
    tok = getattr(tokenizer, "_tokenizer", tokenizer)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": f"Query: {query}"})
    extra = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
    return str(text)


def extract_predicted_slug(text: str) -> str:
    """The word inside the first ``<answer>...</answer>``; else the longest ALL-CAPS token of at least
    7 characters (a capital, then capitals, digits or underscores); else ""."""
    if not text:
        return ""
    match = _ANSWER.search(text)
    if match:
        return match.group(1)
    return max(_CAPS.findall(text), key=len, default="")
