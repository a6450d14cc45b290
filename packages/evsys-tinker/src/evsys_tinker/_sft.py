"""``sft`` on Tinker: chat rows rendered with the model's chat template, cross-entropy on assistant turns."""

from __future__ import annotations

from typing import Any

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.data_types import ChatMessagesRow, TargetFormat, parse_rows
from evsys_sdk.spec.protocols import RunContext
from evsys_tinker import _chat
from evsys_tinker._data import batch_indices, supervised_datum
from evsys_tinker._loop import Batch, Session
from evsys_tinker.config import TinkerSFTConfig


class SFTRecipe:
    def __init__(self, config: TinkerSFTConfig, ctx: RunContext) -> None:
        self.config = config
        rows = ctx.extras.get("train_rows") or []
        if not rows:
            raise EvsysError("tinker_sft needs train_rows: give the run `data` with chat rows ({messages: [...]})")
        self.rows: list[ChatMessagesRow] = parse_rows(rows, TargetFormat.CHAT_MESSAGES)  # type: ignore[assignment]
        self.examples: list[list[tuple[list[int], list[float]]]] = []
        self.truncated = 0

    def n_items(self) -> int:
        return len(self.rows)

    def setup(self, session: Session) -> None:
        cfg = self.config
        for row in self.rows:
            messages = _chat.normalize(row.messages)
            if row.target_assistant is not None:  # the older vintage: the reply to train on is separate
                messages.append({"role": "assistant", "content": row.target_assistant})
            examples = _chat.supervised_examples(
                session.tokenizer,
                messages,
                supervise=cfg.supervise,
                enable_thinking=cfg.enable_thinking,
                max_len=cfg.max_seq_len,
            )
            self.examples.append([e for e in examples if sum(e[1][1:]) > 0])
        if not any(self.examples):
            raise EvsysError(f"no row has an assistant token left within max_seq_len={cfg.max_seq_len}")

    def batch(self, session: Session, step: int) -> Batch:
        cfg = self.config
        data = [
            supervised_datum(tokens, weights)
            for i in batch_indices(len(self.rows), cfg.batch_size, step, cfg.seed)
            for tokens, weights in self.examples[i]
        ]
        return Batch(data, "cross_entropy", metrics={"train/n_datums": float(len(data))})

    def hyperparams(self) -> dict[str, Any]:
        return {"n_train_rows": len(self.rows)}
