"""``local_sdft`` (family ``sdft`` on backend local): self-distillation fine-tuning, own torch loop.

Each step the student (current weights) samples completions from the question alone; the teacher is
the frozen starting model (the same network with its LoRA adapters disabled, or a frozen copy under
full fine-tuning) prompted with the golden answer as a demonstration. The student is trained with
cross-entropy to the teacher's top-K next-token distribution, renormalised over those K tokens, at
every completion position but the first ``skip_first_n_tokens``.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from evsys_local.common import LocalTrainerParams
from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.families import SDFTParams, total_steps
from evsys_sdk.spec.params import FIXED
from evsys_sdk.spec.protocols import RunContext, RunResult

DEMO_TEMPLATE = (
    "{question}\n\nThis is an example for a response to the question:\n{answer}\n\n"
    "Now answer with a response of your own, including the thinking process."
)


class LocalSDFTConfig(SDFTParams, LocalTrainerParams):
    demo_template: str = Field(
        default=DEMO_TEMPLATE,
        description="the teacher's prompt: a format string over {question} and {answer}",
        json_schema_extra=FIXED,
    )
    user_template: str = Field(
        default="{question}", description="the student's prompt: a format string over the row's fields"
    )
    system_prompt: str | None = Field(default=None, description="a system message for student and teacher")
    skip_first_n_tokens: int = Field(
        default=3, ge=0, description="completion tokens left out of the distillation loss at its start"
    )
    max_context_length: int = Field(
        default=2048, ge=8, description="tokens of teacher context kept (prompt + demonstration)"
    )


def topk_distill_loss(student_logits: Any, teacher_logits: Any, mask: Any, topk: int) -> tuple[Any, Any]:
    """Cross-entropy from the teacher's renormalised top-K distribution to the student, averaged over
    masked positions. Logits are ``[B, T, V]`` at completion positions; returns (loss, teacher entropy
    per position)."""
    import torch

    k = min(topk, teacher_logits.shape[-1])
    top_logits, top_ids = teacher_logits.float().topk(k, dim=-1)
    target = torch.softmax(top_logits, dim=-1)  # softmax over the K logits = renormalised top-K
    student_logp = torch.log_softmax(student_logits.float(), dim=-1).gather(-1, top_ids)
    per_pos = -(target * student_logp).sum(-1)
    weight = mask.float()
    loss = (per_pos * weight).sum() / weight.sum().clamp(min=1.0)
    entropy = -(target * torch.log(target.clamp(min=1e-12))).sum(-1)
    return loss, entropy


class LocalSDFT:
    name: ClassVar[str] = "local_sdft"
    Config = LocalSDFTConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def _examples(self, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        from evsys_sdk.spec.data_types import PromptExample, parse_rows

        try:
            parsed = parse_rows(rows, "prompt_dataset")
        except ValueError as exc:
            raise EvsysError(f"local_sdft: {exc} (rows need inputs.question and expected)") from exc
        out = []
        for i, ex in enumerate(parsed):
            assert isinstance(ex, PromptExample)
            if "question" not in ex.inputs:
                raise EvsysError(f"local_sdft: row {i} has no inputs.question (inputs: {sorted(ex.inputs)})")
            expected = ex.expected if isinstance(ex.expected, str) else json.dumps(ex.expected)
            out.append((str(ex.inputs["question"]), expected))
        return out

    def _render(self, tokenizer: Any, user: str) -> list[int]:
        cfg = self.config
        messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
        messages.append({"role": "user", "content": user})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def train(self, ctx: RunContext) -> RunResult:
        from evsys_local.common import require_local

        handles = require_local(ctx, self.name)
        if int(handles.get("num_processes", 1)) > 1:  # its own loop shards neither data nor gradients yet
            raise EvsysError(
                f"local_sdft trains in its own loop in one process: backend num_processes: "
                f"{handles['num_processes']} is not supported yet; set backend.params.num_processes: 1"
            )
        for key, off in (("mixed_precision", "no"), ("gradient_checkpointing", False), ("quantization", "none")):
            if handles.get(key, off) != off:  # its own torch loop has neither yet: say so, never ignore it
                raise EvsysError(f"local_sdft does not support backend {key} yet; set backend.params.{key}: {off}")
        examples = self._examples(list(ctx.extras.get("train_rows") or []))
        if not examples:
            raise EvsysError("local_sdft: no train rows (check run.data)")
        return _SDFTLoop(self, ctx, handles, examples).run()


class _SDFTLoop:
    def __init__(self, algo: LocalSDFT, ctx: RunContext, handles: dict[str, Any], examples: list[tuple[str, str]]):
        import torch

        from evsys_local.common import manifest_for, peft_config, starting_model

        self.algo, self.cfg, self.ctx, self.handles, self.examples = algo, algo.config, ctx, handles, examples
        self.total = total_steps(self.cfg, len(examples))
        torch.manual_seed(self.cfg.seed)
        model, base, merged = starting_model(ctx, handles)
        lora = peft_config(self.cfg, self.cfg, handles)
        self.teacher: Any = None
        if lora is not None:
            from peft import get_peft_model

            model = get_peft_model(model, lora)
        else:  # full fine-tuning: the teacher is a frozen copy of the starting weights
            import copy

            self.teacher = copy.deepcopy(model).eval().requires_grad_(False)
        self.model = model
        self.tokenizer = handles["tokenizer"]
        self.device = model.device
        self.manifest = manifest_for(base, merged, lora is not None)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=self.cfg.learning_rate, weight_decay=self.cfg.weight_decay)
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            self.cfg.lr_scheduler_type,
            self.optimizer,
            num_warmup_steps=self.cfg.warmup_steps,
            num_training_steps=self.total,
        )
        self.rng = random.Random(self.cfg.seed)

    @contextlib.contextmanager
    def _teacher(self) -> Iterator[Any]:
        if self.teacher is not None:
            yield self.teacher
        else:
            with self.model.disable_adapter():
                yield self.model

    def _batches(self) -> Iterator[list[tuple[str, str]]]:
        """Shuffled epochs, taken cyclically so any step count works."""
        while True:
            order = list(range(len(self.examples)))
            self.rng.shuffle(order)
            for i in range(0, len(order), self.cfg.batch_size):
                chunk = order[i : i + self.cfg.batch_size]
                if len(chunk) == self.cfg.batch_size or len(order) < self.cfg.batch_size:
                    yield [self.examples[j] for j in chunk]

    def _sample(self, prompts: list[list[int]]) -> list[list[int]]:
        """Student rollouts: new token ids per prompt, ending at (and including) eos."""
        import torch

        tok, cfg = self.tokenizer, self.cfg
        width = max(map(len, prompts))
        pad = tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": cfg.temperature, "top_k": 0, "top_p": 1.0}
            if cfg.temperature > 0
            else {"do_sample": False, "temperature": None, "top_k": None, "top_p": None}
        )
        self.model.eval()
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=attn,
                max_new_tokens=cfg.max_tokens,
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
                **sampling,
            )
        self.model.train()
        completions = []
        for row in out[:, width:].tolist():
            if tok.eos_token_id in row:
                row = row[: row.index(tok.eos_token_id) + 1]
            completions.append(row)
        return completions

    def _logits_at_completion(self, model: Any, contexts: list[list[int]], completions: list[list[int]]) -> Any:
        """Logits predicting each completion token: ``[B, max completion len, V]`` (right-padded)."""
        import torch

        seqs = [c + k for c, k in zip(contexts, completions, strict=True)]
        width = max(map(len, seqs))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=self.device)
        attn = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=self.device)
        logits = model(input_ids=ids, attention_mask=attn).logits
        n = max(map(len, completions))
        rows = []
        for b, (c, k) in enumerate(zip(contexts, completions, strict=True)):
            start = len(c) - 1  # logits at position t predict token t + 1
            piece = logits[b, start : start + len(k)]
            rows.append(torch.nn.functional.pad(piece, (0, 0, 0, n - len(k))))
        return torch.stack(rows)

    def _step(self, batch: list[tuple[str, str]]) -> dict[str, float]:
        import torch

        cfg, tok = self.cfg, self.tokenizer
        student_prompts = [self.algo._render(tok, cfg.user_template.format(question=q)) for q, _ in batch]
        teacher_prompts = [self.algo._render(tok, cfg.demo_template.format(question=q, answer=a)) for q, a in batch]
        completions = self._sample(student_prompts)
        keep = [i for i, c in enumerate(completions) if c]
        if not keep:
            return {"sdft/num_datums": 0.0, "sdft/topk": float(cfg.topk)}
        completions = [completions[i] for i in keep]
        student_prompts = [student_prompts[i] for i in keep]
        truncated = 0
        contexts = []
        for j, i in enumerate(keep):
            room = max(1, cfg.max_context_length - len(completions[j]))
            ctx_ids = teacher_prompts[i]
            if len(ctx_ids) > room:  # keep the end of the demonstration, next to the completion
                ctx_ids, truncated = ctx_ids[-room:], truncated + 1
            contexts.append(ctx_ids)
        n = max(map(len, completions))
        mask = torch.tensor(
            [[cfg.skip_first_n_tokens <= j < len(c) for j in range(n)] for c in completions], device=self.device
        )
        with torch.no_grad(), self._teacher() as teacher:
            teacher_logits = self._logits_at_completion(teacher, contexts, completions)
        student_logits = self._logits_at_completion(self.model, student_prompts, completions)
        loss, entropy = topk_distill_loss(student_logits, teacher_logits, mask, cfg.topk)
        (loss / cfg.gradient_accumulation_steps).backward()
        n_tokens = float(mask.sum().item())
        metrics = {
            "sdft/num_datums": float(len(completions)),
            "sdft/topk": float(cfg.topk),
            "sdft/teacher_truncated_count": float(truncated),
            "train/loss_n_tokens": n_tokens,
        }
        if n_tokens:
            metrics["sdft/total_completion_tokens"] = float(sum(map(len, completions)))
            metrics["sdft/mean_teacher_entropy"] = float((entropy * mask).sum().item() / n_tokens)
        metrics["train/loss"] = float(loss.item())
        return metrics

    def _save(self, path: Path, step: int) -> str:
        import torch

        from evsys_local.checkpoints import write_manifest

        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))
        torch.save(self.optimizer.state_dict(), path / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), path / "scheduler.pt")
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "algorithm": "local_sdft"}))
        write_manifest(path, **self.manifest)
        return str(path)

    def _resume(self, path: str) -> int:
        import torch

        p = Path(path)
        if (p / "adapter_config.json").exists():
            from peft import set_peft_model_state_dict
            from peft.utils import load_peft_weights

            set_peft_model_state_dict(self.model, load_peft_weights(str(p), device=str(self.device)))
        else:
            from safetensors.torch import load_file

            self.model.load_state_dict(load_file(str(p / "model.safetensors")), strict=False)
        self.optimizer.load_state_dict(torch.load(p / "optimizer.pt", map_location=self.device, weights_only=True))
        self.scheduler.load_state_dict(torch.load(p / "scheduler.pt", weights_only=True))
        step: int = json.loads((p / "trainer_state.json").read_text())["global_step"]
        return step

    def run(self) -> RunResult:
        import torch

        from evsys_local.common import checkpoint_steps, resume_path

        ctx, cfg = self.ctx, self.cfg
        ctx.log_store.log_hyperparams(
            {
                "algorithm": self.algo.name,
                **cfg.model_dump(),
                "total_steps": self.total,
                "n_train_rows": len(self.examples),
            }
        )
        resume = resume_path(self.handles)
        start = self._resume(resume) if resume else 0
        marks = checkpoint_steps(cfg, self.total)
        out = Path(ctx.output_dir)
        saved: dict[int, str] = {}
        batches = self._batches()
        for _ in range(start * cfg.gradient_accumulation_steps):
            next(batches)  # a resumed run continues where the data order left off
        last: dict[str, float] = {}
        self.model.train()
        for step in range(start + 1, self.total + 1):
            ctx.check_budget()
            micro = [self._step(next(batches)) for _ in range(cfg.gradient_accumulation_steps)]
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], cfg.max_grad_norm or float("inf")
            )
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            last = {k: sum(m.get(k, 0.0) for m in micro) / len(micro) for k in micro[0]}
            if "train/loss" in last:
                last["train/mean_loss"] = last["train/loss"]
                last["train/mean_logprob"] = -last["train/loss"]
            last["train/grad_norm"] = float(grad_norm)
            last["train/learning_rate"] = float(self.scheduler.get_last_lr()[0])
            if step % cfg.logging_steps == 0 or step == self.total:
                ctx.log_store.log_metrics(last, step)
            if step in marks:
                saved[step] = self._save(out / f"checkpoint-{step}", step)
            ctx.validate(step, self._live)
        return self._finish(out, saved, last)

    def _live(self) -> Any:
        """An inference client on the live student (built only when a validation set is due)."""
        from evsys_local.inference import LocalInference

        if getattr(self, "_live_client", None) is None:
            self._live_client = LocalInference.from_model(self.model, self.tokenizer)
        return self._live_client

    def _finish(self, out: Path, saved: dict[int, str], last: dict[str, float]) -> RunResult:
        from evsys_local.checkpoints import write_manifest

        ctx = self.ctx
        final = out / "final"
        self.model.save_pretrained(str(final))
        self.tokenizer.save_pretrained(str(final))
        write_manifest(final, **self.manifest)
        state = out / "state-final"
        if state.exists():
            shutil.rmtree(state)
        last_ckpt = saved.get(self.total)
        if last_ckpt:
            Path(last_ckpt).rename(state)
        else:
            self._save(state, self.total)
        saved[self.total] = str(state)
        artifacts = {"final_checkpoint": str(final), "state-final": str(state)}
        for step, path in sorted(saved.items()):
            artifacts[f"ckpt_step_{step}"] = path
            ctx.log_store.log_artifact(f"ckpt_step_{step}", path, kind="checkpoint")
        ctx.log_store.log_artifact("final_checkpoint", str(final), kind="checkpoint")
        metrics = {"total_steps": float(self.total)}
        if "train/loss" in last:
            metrics["train/final_loss"] = last["train/loss"]
        return RunResult(ctx.run_id, "completed", metrics=metrics, artifacts=artifacts)
