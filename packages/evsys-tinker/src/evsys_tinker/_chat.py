"""Chat rendering through the model tokenizer's own chat template (tinker-cookbook's renderers cannot be
installed here), and the token/weight sequences SFT trains on.
"""

from __future__ import annotations

from typing import Any

from evsys_sdk.base.errors import EvsysError
from evsys_tinker.seam import Tokenizer

# End-of-turn markers of common chat templates: sampling stops at whichever the vocabulary has.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                raise EvsysError("evsys-tinker renders text-only chats; a message has a non-text content block")
        return "".join(parts)
    return "" if content is None else str(content)


def normalize(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": str(m["role"]), "content": _text(m.get("content"))} for m in messages]


def render_text(
    tokenizer: Tokenizer, messages: list[dict[str, str]], *, generation_prompt: bool, enable_thinking: bool | None
) -> str:
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": generation_prompt}
    if enable_thinking is not None:  # only Qwen3-style templates know it
        kwargs["enable_thinking"] = enable_thinking
    text = tokenizer.apply_chat_template(messages, **kwargs)
    return str(text)


def prompt_tokens(tokenizer: Tokenizer, messages: list[dict[str, str]], *, enable_thinking: bool | None) -> list[int]:
    """The tokens of ``messages`` followed by the assistant's generation prompt."""
    text = render_text(tokenizer, messages, generation_prompt=True, enable_thinking=enable_thinking)
    return list(tokenizer.encode(text, add_special_tokens=False))


def user_prompt(system: str | None, user: str) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def stop_tokens(tokenizer: Tokenizer) -> list[int]:
    """Token ids ending an assistant turn: EOS plus the template's end-of-turn markers."""
    ids = {tokenizer.eos_token_id} if isinstance(tokenizer.eos_token_id, int) else set()
    for marker in _END_OF_TURN:
        found = tokenizer.convert_tokens_to_ids(marker)
        unk = getattr(tokenizer, "unk_token_id", None)
        if isinstance(found, int) and found >= 0 and found != unk:
            ids.add(found)
    return sorted(ids)


Example = tuple[list[int], list[float]]


def supervised_examples(
    tokenizer: Tokenizer,
    messages: list[dict[str, str]],
    *,
    supervise: str,
    enable_thinking: bool | None,
    max_len: int,
) -> list[Example]:
    """Token sequences with weight 1 on the supervised assistant turns, 0 elsewhere.

    The assistant spans are found by rendering prefixes of the chat: a turn's text lies between the
    render of the chat before it (with the generation prompt) and the render including it. Templates
    that rewrite earlier turns (e.g. dropping old reasoning) break that prefix property; their chats
    are split into one example per assistant turn, each supervising its last turn.
    """
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not assistants:
        raise EvsysError("a chat row has no assistant message to supervise")
    targets = assistants if supervise == "all_assistant" else assistants[-1:]
    example = _one_sequence(tokenizer, messages, targets, enable_thinking)
    if example is None:
        if len(targets) == 1:
            raise EvsysError(
                "the model's chat template does not render a conversation as an extension of its prefix, "
                "so the assistant turn to supervise cannot be located"
            )
        examples = [_one_sequence(tokenizer, messages[: i + 1], [i], enable_thinking) for i in targets]
        found = [e for e in examples if e is not None]
    else:
        found = [example]
    return [(tokens[:max_len], weights[:max_len]) for tokens, weights in found]


def _one_sequence(
    tokenizer: Tokenizer, messages: list[dict[str, str]], targets: list[int], enable_thinking: bool | None
) -> Example | None:
    full = render_text(tokenizer, messages, generation_prompt=False, enable_thinking=enable_thinking)
    spans: list[tuple[int, int]] = []
    for i in targets:
        before = render_text(tokenizer, messages[:i], generation_prompt=True, enable_thinking=enable_thinking)
        upto = render_text(tokenizer, messages[: i + 1], generation_prompt=False, enable_thinking=enable_thinking)
        if not (upto.startswith(before) and full.startswith(upto)):
            return None
        spans.append((len(before), len(upto)))
    tokens: list[int] = []
    weights: list[float] = []
    cursor = 0
    # Tokenized piecewise, as sampling sees them: prompt tokens, then the completion's own tokens.
    for start, end in spans:
        for text, weight in ((full[cursor:start], 0.0), (full[start:end], 1.0)):
            ids = tokenizer.encode(text, add_special_tokens=False) if text else []
            tokens += ids
            weights += [weight] * len(ids)
        cursor = end
    tail = tokenizer.encode(full[cursor:], add_special_tokens=False) if full[cursor:] else []
    return tokens + list(tail), weights + [0.0] * len(tail)
