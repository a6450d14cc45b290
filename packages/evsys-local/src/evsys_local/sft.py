"""``local_sft`` (family ``sft`` on backend local): TRL SFTTrainer, LoRA or full fine-tuning."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from evsys_local.common import LocalTrainerParams
from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.families import SFTParams, total_steps
from evsys_sdk.spec.protocols import RunContext, RunResult


class LocalSFTConfig(SFTParams, LocalTrainerParams):
    # assistant: loss on assistant tokens (chat rows) or on the completion (prompt/completion rows).
    loss_on: Literal["assistant", "all"] = Field(
        default="assistant", description="tokens the loss covers: the assistant turns / completion, or all"
    )
    packing: bool = Field(default=False, description="pack several rows into each max_seq_len sequence")


def sft_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat rows (``messages``) or prompt/completion rows, reduced to the columns TRL reads."""
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if isinstance(row.get("messages"), list):
            msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"]]
            out.append({"messages": msgs})
        elif isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
            out.append({"prompt": row["prompt"], "completion": row["completion"]})
        else:
            raise EvsysError(
                f"local_sft: train row {i} has neither 'messages' nor string 'prompt' and 'completion' "
                f"(keys: {sorted(row)})"
            )
    kinds = {"messages" in r for r in out}
    if len(kinds) > 1:
        raise EvsysError("local_sft: mix of chat rows and prompt/completion rows; use one form per dataset")
    return out


class LocalSFT:
    name: ClassVar[str] = "local_sft"
    Config = LocalSFTConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        from evsys_local.common import require_local

        handles = require_local(ctx, self.name)
        rows = sft_rows(list(ctx.extras.get("train_rows") or []))
        if not rows:
            raise EvsysError("local_sft: no train rows (check run.data)")
        from evsys_local.common import distributed, per_device

        per_device_batch = per_device(handles, self.config.batch_size, "local_sft: batch_size")
        if (launched := distributed(self, ctx, handles)) is not None:
            return launched

        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        from evsys_local.common import (
            checkpoint_steps,
            finish_checkpoints,
            make_callback,
            manifest_for,
            peft_config,
            quiet,
            resume_path,
            starting_model,
            trainer_args,
        )

        cfg = self.config
        total = total_steps(cfg, len(rows))
        model, base, merged = starting_model(ctx, handles)
        tokenizer = handles["tokenizer"]
        tokenizer.padding_side = "right"
        lora = peft_config(cfg, cfg, handles)
        manifest = manifest_for(base, merged, lora is not None)
        chat = "messages" in rows[0]
        ctx.log_store.log_hyperparams(
            {"algorithm": self.name, **cfg.model_dump(), "total_steps": total, "n_train_rows": len(rows)}
        )
        args = SFTConfig(
            **trainer_args(cfg, handles, ctx.output_dir, total),
            per_device_train_batch_size=per_device_batch,
            max_length=cfg.max_seq_len,
            packing=cfg.packing,
            assistant_only_loss=chat and cfg.loss_on == "assistant",
            completion_only_loss=(not chat) and cfg.loss_on == "assistant",
            dataset_num_proc=None,
        )
        callback = make_callback(ctx, tokenizer, checkpoint_steps(cfg, total), manifest=manifest)
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[callback, *ctx.extras.get("local_trainer_callbacks", [])],
        )
        quiet(trainer).train(resume_from_checkpoint=resume_path(handles))
        artifacts = finish_checkpoints(ctx, trainer, tokenizer, callback, total, manifest)
        metrics = {"train/final_loss": callback.last_loss if callback.last_loss is not None else 0.0}
        metrics["total_steps"] = float(total)
        return RunResult(ctx.run_id, "completed", metrics=metrics, artifacts=artifacts)
