"""Harbor data shapes: the row formats runners consume and dashboards render.

Four row formats, one per target: ``ChatMessagesRow`` (SFT), ``HarborTask`` (RL, benchmarks),
``PromptExample`` (prompt tuning) and ``PreferenceRow`` (DPO: TRL's prompt/chosen/rejected shape).
A HarborTask carries a verifier *spec* (``VerifierPayload``), which is data describing how to score a
completion; ``evsys_sdk.builtins.verifier_fns.verify_task`` executes the in-process kind. Every shape is a frozen
dataclass and round-trips through JSON with ``to_dict`` and ``from_dict`` unchanged, so JSONL written
here is read by the serving/dashboard stack as is. ``row_prompt`` / ``row_answer`` read a raw row of any
format (before it is parsed into one of them).
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "ChatMessagesRow",
    "E2BVerifier",
    "FormatName",
    "HarborTask",
    "InProcessVerifier",
    "LLMJudgeVerifier",
    "PreferenceRow",
    "PromptExample",
    "Row",
    "TargetFormat",
    "VerifierPayload",
    "block_to_image_src",
    "chat_messages_row_from_dict",
    "detect_format",
    "from_dict",
    "harbor_task_from_dict",
    "has_images",
    "image_base64_block",
    "image_url_block",
    "iter_jsonl",
    "parse_rows",
    "preference_row_from_dict",
    "prompt_example_from_dict",
    "row_answer",
    "row_prompt",
    "text_block",
    "to_dict",
]


class TargetFormat(enum.StrEnum):
    """What a runner consumes: chat rows (SFT), Harbor tasks (RL), prompt examples (prompt tuning) or
    preference pairs (DPO)."""

    CHAT_MESSAGES = "chat_messages"
    HARBOR_TASK = "harbor_task"
    PROMPT_DATASET = "prompt_dataset"
    PREFERENCE = "preference"


FormatName = Literal["chat_messages", "harbor_task", "prompt_dataset", "preference", "unknown"]


@dataclass(frozen=True)
class ChatMessagesRow:
    """One conversation. Which turns are trained is the algorithm's choice, not the row's.

    ``target_assistant`` is the older vintage's supervised reply; it stays optional so files of both
    vintages load. A message's ``content`` is a string or a list of text/image blocks.
    """

    messages: list[dict[str, Any]]
    metadata: dict[str, Any] = field(default_factory=dict)
    target_assistant: str | None = None


@dataclass(frozen=True)
class InProcessVerifier:
    """Score with the function registered as ``fn_name``: ``fn(completion, expected, params)``."""

    fn_name: str
    expected: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    kind: Literal["in_process"] = "in_process"


@dataclass(frozen=True)
class E2BVerifier:
    """Run ``test_sh`` against the completion in a sandbox built from ``dockerfile``; exit code = pass."""

    dockerfile: str = ""
    test_sh: str = ""
    test_state_py: str = ""
    kind: Literal["e2b"] = "e2b"


@dataclass(frozen=True)
class LLMJudgeVerifier:
    """``judge_model`` scores the completion against ``rubric``."""

    judge_model: str = ""
    rubric: str = ""
    kind: Literal["llm_judge"] = "llm_judge"


VerifierPayload: TypeAlias = InProcessVerifier | E2BVerifier | LLMJudgeVerifier


@dataclass(frozen=True)
class HarborTask:
    """One task: an instruction for the policy and the spec scoring its answer.

    ``verifier`` is None only for generation-only rollouts (nothing to score).
    """

    task_id: str
    instruction: str
    verifier: VerifierPayload | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptExample:
    """Named inputs and the gold output a prompt-tuning score compares against."""

    inputs: dict[str, Any]
    expected: Any
    metadata: dict[str, Any] = field(default_factory=dict)


Turns: TypeAlias = str | list[dict[str, Any]]


@dataclass(frozen=True)
class PreferenceRow:
    """A preference pair in TRL's shape: a ``prompt`` and a preferred (``chosen``) and a dispreferred
    (``rejected``) continuation. All three are strings (standard) or all three message lists
    (conversational: the prompt's turns, then the assistant turn(s) of each continuation).

    ``metadata`` says where the pair came from (e.g. the on-policy pair transform's provenance).
    """

    prompt: Turns
    chosen: Turns
    rejected: Turns
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def conversational(self) -> bool:
        return isinstance(self.prompt, list)


Row: TypeAlias = ChatMessagesRow | HarborTask | PromptExample | PreferenceRow


def text_block(text: str) -> dict[str, Any]:
    """A text content block (the same shape for OpenAI and Anthropic)."""
    return {"type": "text", "text": text}


def image_url_block(url: str, detail: str | None = None) -> dict[str, Any]:
    """An OpenAI-style image block; ``detail`` ("low", "high", "auto") only when given."""
    image_url: dict[str, Any] = {"url": url}
    if detail:
        image_url["detail"] = detail
    return {"type": "image_url", "image_url": image_url}


def image_base64_block(media_type: str, data: str) -> dict[str, Any]:
    """An Anthropic-style base64 image block, e.g. ``image_base64_block("image/png", b64)``."""
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def block_to_image_src(block: Any) -> str | None:
    """A renderable src (URL or ``data:`` URI) for an image block of either shape, else None."""
    if not isinstance(block, dict):
        return None
    if block.get("type") == "image_url":
        image_url = block.get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else None
        return url if isinstance(url, str) else None
    source = block.get("source")
    if block.get("type") != "image" or not isinstance(source, dict):
        return None
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    media_type, data = source.get("media_type"), source.get("data")
    if source.get("type") == "base64" and isinstance(media_type, str) and isinstance(data, str):
        return f"data:{media_type};base64,{data}"
    return None


def has_images(row: ChatMessagesRow | Mapping[str, Any]) -> bool:
    """True iff some message's block-list content holds an image block (typed or raw chat row)."""
    messages = row.messages if isinstance(row, ChatMessagesRow) else row.get("messages")
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(block_to_image_src(b) is not None for b in content):
            return True
    return False


def detect_format(row: Any) -> FormatName:
    """The format of a raw row, most specific signature first: harbor -> prompt -> preference -> chat."""
    if not isinstance(row, Mapping):
        return "unknown"
    if "task_id" in row and "verifier" in row:
        return "harbor_task"
    if "inputs" in row and "expected" in row:
        return "prompt_dataset"
    if "chosen" in row and "rejected" in row:
        return "preference"
    if "messages" in row:
        return "chat_messages"
    return "unknown"


def _required(d: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in d:
        raise KeyError(f"{what} is missing required field '{key}'")
    return d[key]


def _verifier_from_dict(d: Any, task_id: Any) -> VerifierPayload | None:
    if d is None:  # a generation-only task, as ``to_dict`` writes it
        return None
    if not isinstance(d, Mapping):  # a data error like the others below, so loaders report it uniformly
        raise ValueError(f"task '{task_id}': verifier must be an object with a 'kind', got {type(d).__name__}")
    kind = d.get("kind")
    if kind == "in_process":
        return InProcessVerifier(
            fn_name=_required(d, "fn_name", "in_process verifier"),
            expected=d.get("expected"),
            params=dict(d.get("params") or {}),
        )
    if kind == "e2b":
        return E2BVerifier(
            dockerfile=d.get("dockerfile", ""), test_sh=d.get("test_sh", ""), test_state_py=d.get("test_state_py", "")
        )
    if kind == "llm_judge":
        return LLMJudgeVerifier(judge_model=d.get("judge_model", ""), rubric=d.get("rubric", ""))
    raise ValueError(f"unknown verifier kind: {kind!r}")


def harbor_task_from_dict(d: Mapping[str, Any]) -> HarborTask:
    """Parse a task; task_id, instruction and verifier are required (KeyError naming the field)."""
    task_id = _required(d, "task_id", "harbor_task row")
    return HarborTask(
        task_id=task_id,
        instruction=_required(d, "instruction", f"harbor_task '{task_id}'"),
        verifier=_verifier_from_dict(_required(d, "verifier", f"harbor_task '{task_id}'"), task_id),
        metadata=dict(d.get("metadata") or {}),
    )


def chat_messages_row_from_dict(d: Mapping[str, Any]) -> ChatMessagesRow:
    """Parse a chat row: a non-empty ``messages`` list, or (older vintage) any list plus a target."""
    messages = d.get("messages")
    target = d.get("target_assistant")
    if target is not None and not isinstance(target, str):
        raise ValueError(f"chat_messages row: target_assistant must be a string, got {type(target).__name__}")
    if not isinstance(messages, list) or (not messages and target is None):
        raise ValueError("chat_messages row requires a non-empty `messages` list")
    return ChatMessagesRow(messages=list(messages), metadata=dict(d.get("metadata") or {}), target_assistant=target)


def prompt_example_from_dict(d: Mapping[str, Any]) -> PromptExample:
    """Parse a prompt example; ``inputs`` defaults to {} and ``expected`` to None."""
    return PromptExample(
        inputs=dict(d.get("inputs") or {}), expected=d.get("expected"), metadata=dict(d.get("metadata") or {})
    )


def _turns(value: Any, key: str) -> Turns:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(m, Mapping) and "role" in m for m in value):
        return [dict(m) for m in value]
    raise ValueError(f"preference row: '{key}' must be a string or a non-empty list of messages with a 'role'")


def preference_row_from_dict(d: Mapping[str, Any]) -> PreferenceRow:
    """Parse a preference pair; prompt, chosen and rejected are required and share one shape (all
    strings or all message lists), so a trainer never has to guess which one it got."""
    prompt, chosen, rejected = (_turns(_required(d, k, "preference row"), k) for k in ("prompt", "chosen", "rejected"))
    if len({isinstance(v, str) for v in (prompt, chosen, rejected)}) > 1:
        raise ValueError("preference row: prompt, chosen and rejected must all be strings or all message lists")
    return PreferenceRow(prompt=prompt, chosen=chosen, rejected=rejected, metadata=dict(d.get("metadata") or {}))


def _keys(row: Any) -> list[str] | str:
    return sorted(map(str, row)) if isinstance(row, Mapping) else type(row).__name__


def from_dict(row: Mapping[str, Any]) -> Row:
    """Parse a raw row of any format, dispatching on ``detect_format``."""
    fmt = detect_format(row)
    if fmt == "unknown":
        raise ValueError(f"can't dispatch row — unknown format: keys={_keys(row)}")
    return _PARSERS[TargetFormat(fmt)](row)


def to_dict(obj: Row | VerifierPayload) -> dict[str, Any]:
    """A plain, JSON-ready dict that ``from_dict`` turns back into an equal object."""
    d = dataclasses.asdict(obj)
    if isinstance(obj, ChatMessagesRow) and obj.target_assistant is None:
        del d["target_assistant"]  # keep docs-vintage rows in the docs shape
    return d


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[Row]:
    """Typed rows of a (mixed-format) JSONL file; blank lines are skipped.

    A bad line raises ValueError ``<path>:<line>: <problem>``.
    """
    from evsys_sdk.base.io import iter_jsonl_values

    for lineno, raw in iter_jsonl_values(path):
        try:
            row = from_dict(raw)
        except (KeyError, ValueError) as exc:
            message = exc.args[0] if exc.args else exc
            raise ValueError(f"{path}:{lineno}: {message}") from exc
        yield row


def parse_rows(rows: Iterable[Mapping[str, Any]], fmt: TargetFormat | str) -> list[Row]:
    """Strictly parse every row as ``fmt``: a row of another format is an error, never coerced."""
    try:
        want = TargetFormat(fmt)
    except ValueError:
        raise ValueError(
            f"unsupported target format {fmt!r} (expected one of {[f.value for f in TargetFormat]})"
        ) from None
    parser = _PARSERS[want]
    out: list[Row] = []
    for i, row in enumerate(rows):
        got = detect_format(row)
        if got != want.value:
            raise ValueError(f"row {i} has format '{got}', expected '{want.value}' (keys={_keys(row)})")
        out.append(parser(row))
    return out


_PARSERS: dict[TargetFormat, Callable[[Mapping[str, Any]], Row]] = {
    TargetFormat.CHAT_MESSAGES: chat_messages_row_from_dict,
    TargetFormat.HARBOR_TASK: harbor_task_from_dict,
    TargetFormat.PROMPT_DATASET: prompt_example_from_dict,
    TargetFormat.PREFERENCE: preference_row_from_dict,
}


def row_prompt(row: dict[str, Any]) -> str:
    """What a model is asked for a row: ``prompt``, a Harbor ``instruction``, else the last user turn."""
    if "prompt" in row:
        return str(row["prompt"])
    if "instruction" in row:
        return str(row["instruction"])
    messages = row.get("messages") or []
    user = [m for m in messages if m.get("role") != "assistant"]
    return str(user[-1]["content"]) if user else ""


def row_answer(row: dict[str, Any]) -> str | None:
    """The reference answer of a row: ``answer``/``completion``, a Harbor verifier's ``expected``, else
    the last assistant turn."""
    for key in ("answer", "completion", "tool_slug"):
        if isinstance(row.get(key), str):
            return str(row[key])
    verifier = row.get("verifier")
    if isinstance(verifier, dict) and verifier.get("expected") is not None:
        return str(verifier["expected"])
    assistant = [m for m in row.get("messages") or [] if m.get("role") == "assistant"]
    return str(assistant[-1]["content"]) if assistant else None
