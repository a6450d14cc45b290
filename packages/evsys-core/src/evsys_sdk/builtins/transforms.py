"""Built-in row transforms; registered centrally in ``builtins.hooks``."""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from pydantic import Field, field_validator

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.config import InferenceSpec, StrictModel

__all__ = ["TRANSFORM_CLASSES", "IdentityTransform", "JsonlToChat", "MissingFieldError", "OnPolicyPairs"]


class MissingFieldError(EvsysError, KeyError):
    """A template names a field the row lacks (a KeyError, as ``str.format`` would raise)."""

    def __init__(self, field: str, template: str, row_index: int, row_keys: Iterable[str]) -> None:
        self.field, self.template, self.row_index = field, template, row_index
        super().__init__(
            f"jsonl_to_chat: row {row_index} has no field '{field}' used by template {template!r} "
            f"(row keys: {sorted(row_keys)})"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class IdentityTransform:
    """Passes rows through unchanged."""

    name: ClassVar[str] = "identity"
    pure: ClassVar[bool] = True  # a function of the rows alone: deep validation may run it

    class Config(StrictModel):
        """No params."""

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        return iter(rows)


class JsonlToChat:
    """Adds a ``messages`` list to each row, rendered from the row's fields with ``str.format``:
    a system message (when ``system_prompt`` is non-empty), a user message from ``user_template`` and
    an assistant message from ``assistant_template`` (when set). The row's other fields are kept."""

    name: ClassVar[str] = "jsonl_to_chat"
    pure: ClassVar[bool] = True

    class Config(StrictModel):
        system_prompt: str = Field(default="", description="a system message put first (empty: none)")
        user_template: str = Field(
            default="{query}", description="the user message: a format string over the row's fields"
        )
        assistant_template: str | None = Field(
            default=None, description="the assistant message, a format string (default: the row's completion)"
        )

        @field_validator("user_template", "assistant_template")
        @classmethod
        def _named_fields_only(cls, template: str | None) -> str | None:
            # Positional fields ("{}", "{0}") can never be filled from a row; say so at config time.
            for _, field, _, _ in string.Formatter().parse(template or ""):
                if field is not None and (field == "" or field.isdigit()):
                    raise ValueError(f"template {template!r} has a positional field; name a row field, e.g. {{query}}")
            return template

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        cfg = self.config
        for i, row in enumerate(rows):
            messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
            messages.append({"role": "user", "content": _render(cfg.user_template, row, i)})
            if cfg.assistant_template is not None:
                messages.append({"role": "assistant", "content": _render(cfg.assistant_template, row, i)})
            yield {**row, "messages": messages}


def _render(template: str, row: dict[str, Any], index: int) -> str:
    try:
        return template.format(**row)
    except KeyError as exc:
        raise MissingFieldError(str(exc.args[0]), template, index, row) from None


class OnPolicyPairs:
    """Turns Harbor tasks with verifiers into DPO preference rows: ``k`` samples per task from
    ``inference``, a passing one as ``chosen`` and a failing one as ``rejected``; tasks without
    contrast are dropped (see ``evsys_sdk.builtins.preference``)."""

    name: ClassVar[str] = "on_policy_pairs"

    class Config(StrictModel):
        inference: InferenceSpec = Field(description="the policy that samples: a registered inference client")
        k: int = Field(default=4, ge=2, le=256, description="samples per task")
        max_tokens: int = Field(default=256, ge=1, le=32_768, description="tokens per sample")
        temperature: float = Field(default=1.0, ge=0, le=10.0, description="sampling temperature")
        threshold: float = Field(default=1.0, description="a sample passes when its reward is >= this")
        pairs_per_task: int = Field(default=1, ge=1, le=128, description="at most this many pairs per task")
        conversational: bool = Field(default=False, description="write message lists instead of strings")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        from evsys_sdk.base.logger import get_logger
        from evsys_sdk.builtins.preference import PairStats, on_policy_pairs
        from evsys_sdk.plugins.registry import get_inference
        from evsys_sdk.spec.data_types import harbor_task_from_dict, to_dict

        cfg = self.config
        client = get_inference(cfg.inference.kind)(**cfg.inference.params)
        try:
            tasks = [harbor_task_from_dict(row) for row in rows]
        except (KeyError, ValueError) as exc:
            raise EvsysError(f"on_policy_pairs: rows must be Harbor tasks with verifiers: {exc}") from None
        stats = PairStats()
        pairs = on_policy_pairs(
            tasks,
            client,
            k=cfg.k,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            threshold=cfg.threshold,
            pairs_per_task=cfg.pairs_per_task,
            conversational=cfg.conversational,
            stats=stats,
        )
        yield from (to_dict(p) for p in pairs)
        get_logger("data").info(
            "on_policy_pairs: %d pairs from %d tasks (%d all passed, %d all failed: skipped)",
            stats.pairs,
            stats.tasks,
            len(stats.all_pass),
            len(stats.all_fail),
        )


TRANSFORM_CLASSES: tuple[type[Any], ...] = (IdentityTransform, JsonlToChat, OnPolicyPairs)
