"""``local_distill`` (family ``distill`` on backend local): on-policy distillation on TRL's DistillationTrainer.

The student samples completions for the rows' prompts and is trained to match the teacher's next-token
distribution on them under the generalised JSD (``beta``: 0 = forward KL, 1 = reverse KL). TRL's trainer is
fully on-policy; ``lmbda`` < 1 makes that share of batches off-policy, training on the rows' own answers
instead of fresh samples (GKD's mixture). Prompts are user turns of the chat template, as local inference
renders them. Teacher and student must share a vocabulary (TRL compares full distributions).
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from evsys_local.common import LocalTrainerParams
from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.families import DistillParams, distill_endpoints, total_steps
from evsys_sdk.spec.protocols import RunContext, RunResult


class LocalDistillConfig(DistillParams, LocalTrainerParams):
    pass


def prompt_rows(rows: list[dict[str, Any]]) -> list[tuple[list[dict[str, str]], str | None]]:
    """``(prompt messages, reference answer or None)`` per row: chat rows (the turns before the last
    assistant turn, which is the answer), Harbor tasks (instruction; a string ``expected``) or prompt rows
    (``prompt``, optional ``completion``)."""
    from evsys_sdk.spec.data_types import detect_format

    out: list[tuple[list[dict[str, str]], str | None]] = []
    for i, row in enumerate(rows):
        fmt = detect_format(row)
        if fmt == "harbor_task":
            expected = (row.get("verifier") or {}).get("expected")
            out.append(
                (
                    [{"role": "user", "content": str(row["instruction"])}],
                    expected if isinstance(expected, str) else None,
                )
            )
        elif fmt == "chat_messages" and isinstance(row.get("messages"), list):
            msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"]]
            if msgs and msgs[-1]["role"] == "assistant":
                out.append((msgs[:-1], msgs[-1]["content"]))
            else:
                out.append((msgs, None))
        elif isinstance(row.get("prompt"), str):
            completion = row.get("completion")
            out.append(
                ([{"role": "user", "content": row["prompt"]}], completion if isinstance(completion, str) else None)
            )
        else:
            raise EvsysError(
                f"local_distill: train row {i} has no prompt (give chat rows, Harbor tasks or prompt rows; "
                f"keys: {sorted(row)})"
            )
        if not out[-1][0]:
            raise EvsysError(f"local_distill: train row {i} has no prompt turn before its answer")
    return out


class LocalDistill:
    name: ClassVar[str] = "local_distill"
    Config = LocalDistillConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        from evsys_local.common import require_local

        handles = require_local(ctx, self.name)
        cfg = self.config
        rows = prompt_rows(list(ctx.extras.get("train_rows") or []))
        if not rows:
            raise EvsysError("local_distill: no train rows (check run.data)")
        if cfg.lmbda < 1 and any(answer is None for _, answer in rows):
            raise EvsysError(
                f"local_distill: lmbda={cfg.lmbda} trains {1 - cfg.lmbda:.0%} of batches on the rows' answers, "
                "but some rows have none; give answers (an assistant turn, completion or expected) or set lmbda: 1"
            )
        from evsys_local.common import distributed, per_device

        per_device_batch = per_device(handles, cfg.batch_size, "local_distill: batch_size")
        if (launched := distributed(self, ctx, handles)) is not None:
            return launched
        # The chain's checkpoint: a combo phase's predecessor, or a continual stage's init_from_checkpoint.
        chained = ctx.extras.get("init_checkpoint") or handles.get("init_from_checkpoint")
        teacher_name, student_init = distill_endpoints(cfg.teacher, chained)

        from datasets import Dataset
        from trl import DistillationConfig

        from evsys_local.backend import load_tokenizer
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

        if cfg.student is not None:
            model, base, merged = handles["load"](cfg.student)
            tokenizer = load_tokenizer(base)
        elif student_init is None and chained:  # teacher: previous; the student starts from the run's model
            model, base, merged = handles["load"](None)
            tokenizer = handles["tokenizer"]
        else:
            model, base, merged = starting_model(ctx, handles)
            tokenizer = handles["tokenizer"]
        teacher = handles["load"](teacher_name)[0].eval().requires_grad_(False)
        vocab = (model.config.get_text_config().vocab_size, teacher.config.get_text_config().vocab_size)
        if vocab[0] != vocab[1]:
            raise EvsysError(
                f"local_distill: the student's vocabulary ({vocab[0]} tokens) differs from the teacher "
                f"'{teacher_name}' ({vocab[1]}); distillation compares full next-token distributions, so pick a "
                "student and teacher sharing a tokenizer"
            )
        tokenizer.padding_side = "left"
        total = total_steps(cfg, len(rows))
        lora = peft_config(cfg, cfg, handles)
        manifest = manifest_for(base, merged, lora is not None)
        ctx.log_store.log_hyperparams(
            {
                "algorithm": self.name,
                **cfg.model_dump(),
                "teacher_resolved": teacher_name,
                "student_resolved": base,
                "total_steps": total,
                "n_train_rows": len(rows),
            }
        )
        args = DistillationConfig(
            **trainer_args(cfg, handles, ctx.output_dir, total),
            per_device_train_batch_size=per_device_batch,
            max_completion_length=cfg.max_completion_tokens,
            temperature=cfg.temperature,
            beta=cfg.beta,
            top_k=0,
            top_p=1.0,
            use_vllm=False,
        )
        trainer_cls = _trainer_class()
        trainer = trainer_cls(
            model=model,
            teacher_model=teacher,
            args=args,
            train_dataset=Dataset.from_list([{"prompt": prompt} for prompt, _ in rows]),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[*ctx.extras.get("local_trainer_callbacks", [])],
        )
        trainer.evsys_mix(rows, cfg.lmbda, cfg.seed)
        callback = make_callback(
            ctx, tokenizer, checkpoint_steps(cfg, total), extra_metrics=trainer.evsys_metrics, manifest=manifest
        )
        trainer.add_callback(callback)
        quiet(trainer).train(resume_from_checkpoint=resume_path(handles))
        artifacts = finish_checkpoints(ctx, trainer, tokenizer, callback, total, manifest)
        metrics = {"train/final_loss": callback.last_loss if callback.last_loss is not None else 0.0}
        metrics["total_steps"] = float(total)
        metrics["distill/on_policy_fraction"] = trainer.evsys_metrics(total)["distill/on_policy_fraction"]
        return RunResult(ctx.run_id, "completed", metrics=metrics, artifacts=artifacts)


def _trainer_class() -> Any:
    """TRL's DistillationTrainer with GKD's on-/off-policy mixture (``lmbda``) added."""
    from trl import DistillationTrainer

    class MixedPolicyDistillation(DistillationTrainer):  # type: ignore[misc]
        def evsys_mix(self, rows: list[tuple[list[dict[str, str]], str | None]], lmbda: float, seed: int) -> None:
            """Index the rows' answers by prompt token ids, tokenised exactly as TRL tokenises prompts."""
            self._lmbda, self._rng = lmbda, random.Random(seed)
            self._answers: dict[tuple[int, ...], list[int]] = {}
            self._batches = [0, 0]  # on-policy, off-policy
            if lmbda >= 1:
                return
            tok = self.processing_class
            for prompt, answer in rows:
                ids = self._tokenize_prompts([prompt])[0][0]
                assert answer is not None
                self._answers[tuple(ids)] = [*tok(answer, add_special_tokens=False)["input_ids"], tok.eos_token_id]

        def evsys_metrics(self, step: int) -> dict[str, float]:
            done = sum(self._batches)
            return {"distill/on_policy_fraction": self._batches[0] / done} if done else {}

        def _generate_single_turn(self, prompt_ids: Any, *args: Any, **kwargs: Any) -> Any:
            if self.model.training and self._lmbda < 1 and self._rng.random() >= self._lmbda:
                self._batches[1] += 1
                return [list(self._answers[tuple(ids)]) for ids in prompt_ids]
            self._batches[0] += self.model.training
            return super()._generate_single_turn(prompt_ids, *args, **kwargs)

    return MixedPolicyDistillation
