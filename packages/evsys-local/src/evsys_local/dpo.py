"""``local_dpo`` (family ``dpo`` on backend local): TRL DPOTrainer, LoRA or full fine-tuning.

Only one model is held: with LoRA the reference is the same network with its adapter disabled (the
weights training starts from); under full fine-tuning the reference log-probs are computed once before
training (``precompute_ref_log_probs``). A ``reference`` checkpoint is loaded just for that precompute.
"""

from __future__ import annotations

from typing import Any, ClassVar

from evsys_local.common import LocalTrainerParams
from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.families import DPOParams, total_steps
from evsys_sdk.spec.protocols import RunContext, RunResult


class LocalDPOConfig(DPOParams, LocalTrainerParams):
    pass


def preference_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as TRL's ``{prompt, chosen, rejected}`` (strings or message lists), strictly parsed."""
    from evsys_sdk.spec.data_types import PreferenceRow, TargetFormat, detect_format, parse_rows

    if rows and detect_format(rows[0]) == "harbor_task":
        raise EvsysError(
            "local_dpo: train rows are Harbor tasks; turn them into preference pairs with the on_policy_pairs "
            "transform (data.transforms: [{kind: on_policy_pairs, params: {inference: {...}}}])"
        )
    try:
        parsed = parse_rows(rows, TargetFormat.PREFERENCE)
    except (KeyError, ValueError) as exc:
        raise EvsysError(
            f"local_dpo: {exc.args[0] if exc.args else exc} (rows need prompt, chosen, rejected)"
        ) from None
    if len({p.conversational for p in parsed if isinstance(p, PreferenceRow)}) > 1:
        raise EvsysError("local_dpo: mix of string and conversational preference rows; use one form per dataset")
    return [
        {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in parsed if isinstance(p, PreferenceRow)
    ]


class LocalDPO:
    name: ClassVar[str] = "local_dpo"
    Config = LocalDPOConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        from evsys_local.common import require_local

        handles = require_local(ctx, self.name)
        rows = preference_rows(list(ctx.extras.get("train_rows") or []))
        if not rows:
            raise EvsysError("local_dpo: no train rows (check run.data)")
        from evsys_local.common import distributed, per_device

        per_device_batch = per_device(handles, self.config.batch_size, "local_dpo: batch_size")
        if (launched := distributed(self, ctx, handles)) is not None:
            return launched

        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

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
        reference = None if cfg.reference == "base" else handles["load"](cfg.reference)[0]
        names, weights = zip(*cfg.losses(), strict=True)
        ctx.log_store.log_hyperparams(
            {"algorithm": self.name, **cfg.model_dump(), "total_steps": total, "n_train_rows": len(rows)}
        )
        args = DPOConfig(
            **trainer_args(cfg, handles, ctx.output_dir, total),
            per_device_train_batch_size=per_device_batch,
            max_length=cfg.max_seq_len,
            beta=cfg.beta,
            loss_type=list(names),
            loss_weights=list(weights) if len(names) > 1 else None,
            label_smoothing=cfg.label_smoothing,
            # One model in memory: LoRA disables its adapter for the reference; otherwise precompute.
            precompute_ref_log_probs=lora is None or reference is not None,
            dataset_num_proc=None,
        )
        callback = make_callback(ctx, tokenizer, checkpoint_steps(cfg, total), manifest=manifest)
        trainer = DPOTrainer(
            model=model,
            ref_model=reference,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[callback, *ctx.extras.get("local_trainer_callbacks", [])],
        )
        quiet(trainer).train(resume_from_checkpoint=resume_path(handles))
        artifacts = finish_checkpoints(ctx, trainer, tokenizer, callback, total, manifest)
        metrics = {k: v for k, v in callback.last.items() if k.startswith("dpo/")}
        metrics["train/final_loss"] = callback.last_loss if callback.last_loss is not None else 0.0
        metrics["total_steps"] = float(total)
        return RunResult(ctx.run_id, "completed", metrics=metrics, artifacts=artifacts)
