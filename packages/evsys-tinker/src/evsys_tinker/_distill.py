"""``distill`` on Tinker: on-policy distillation as in the Tinker cookbook (``distillation/train_on_policy``).

Each step the student (a snapshot of the current weights) samples one completion per prompt; the teacher
sampling client scores the same tokens (``compute_logprobs``); every completion token gets the advantage
``-(log p_student - log p_teacher)``, the per-token reverse KL, trained with the ``importance_sampling``
loss. With ``lmbda`` < 1 that share of steps is off-policy: the completions are the rows' own answers,
scored by student and teacher alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tinker import types

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.protocols import RunContext
from evsys_tinker import _chat
from evsys_tinker._data import batch_indices, policy_datum
from evsys_tinker._loop import Batch, Session, service_call
from evsys_tinker.config import TinkerDistillConfig
from evsys_tinker.seam import SamplingClient


def distill_items(rows: list[dict[str, Any]]) -> list[tuple[list[dict[str, str]], str | None]]:
    """``(prompt messages, reference answer or None)``: chat rows, Harbor tasks or prompt rows."""
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
            msgs = _chat.normalize(row["messages"])
            last = msgs[-1]["content"] if msgs and msgs[-1]["role"] == "assistant" else None
            out.append((msgs[:-1] if last is not None else msgs, last))
        elif isinstance(row.get("prompt"), str):
            completion = row.get("completion")
            out.append(
                ([{"role": "user", "content": row["prompt"]}], completion if isinstance(completion, str) else None)
            )
        else:
            raise EvsysError(
                f"tinker_distill: row {i} has no prompt (chat rows, Harbor tasks or prompt rows; keys: {sorted(row)})"
            )
        if not out[-1][0]:
            raise EvsysError(f"tinker_distill: row {i} has no prompt turn before its answer")
    return out


class DistillRecipe:
    def __init__(self, config: TinkerDistillConfig, ctx: RunContext) -> None:
        self.config = config
        self.teacher_name = str(ctx.extras.get("distill_teacher") or config.teacher)
        rows = ctx.extras.get("train_rows") or []
        if not rows:
            raise EvsysError("tinker_distill needs train_rows: give the run `data` with prompts")
        self.items = distill_items(rows)
        if config.lmbda < 1 and any(answer is None for _, answer in self.items):
            raise EvsysError(
                f"tinker_distill: lmbda={config.lmbda} trains off-policy on the rows' answers, but some rows have "
                "none; give answers (an assistant turn, completion or expected) or set lmbda: 1"
            )
        self.teacher: SamplingClient | None = None

    def n_items(self) -> int:
        return len(self.items)

    def setup(self, session: Session) -> None:
        tok, cfg = session.tokenizer, self.config
        self.stop = _chat.stop_tokens(tok)
        self.prompts = [
            _chat.prompt_tokens(tok, _chat.normalize(p), enable_thinking=cfg.enable_thinking) for p, _ in self.items
        ]
        end = self.stop[:1]
        self.answers = [
            list(tok.encode(a, add_special_tokens=False)) + end if a is not None else [] for _, a in self.items
        ]
        name = self.teacher_name
        self.teacher = service_call(
            "create_sampling_client",
            lambda: (
                session.connector.sampling_client(model_path=name)
                if name.startswith("tinker://")
                else session.connector.sampling_client(base_model=name)
            ),
        )

    def batch(self, session: Session, step: int) -> Batch:
        cfg = self.config
        assert self.teacher is not None
        picked = batch_indices(len(self.items), cfg.batch_size, step, cfg.seed)
        on_policy = bool(np.random.default_rng([cfg.seed, step]).random() < cfg.lmbda)
        student = service_call("save_weights_and_get_sampling_client", session.sampler)
        completions: list[tuple[int, list[int], list[float] | None]] = []
        if on_policy:
            params = types.SamplingParams(
                max_tokens=cfg.max_completion_tokens, temperature=cfg.temperature, stop=self.stop
            )
            futures = [student.sample(types.ModelInput.from_ints(self.prompts[i]), 1, params) for i in picked]
            for i, future in zip(picked, futures, strict=True):
                seq = service_call("sample", future.result).sequences[0]
                if seq.tokens and seq.logprobs is not None:
                    completions.append((i, list(seq.tokens), list(seq.logprobs)))
        else:
            completions = [(i, self.answers[i][: cfg.max_completion_tokens], None) for i in picked]
        scored = []
        for i, tokens, logprobs in completions:
            sequence = types.ModelInput.from_ints(self.prompts[i] + tokens)
            # Only the completion is scored: the service serves the prompt prefix from its cache.
            n = len(tokens)
            mine = None if logprobs is not None else student.compute_logprobs(sequence, prompt_logprobs_last_n=n)
            scored.append(
                (i, tokens, logprobs, mine, self.teacher.compute_logprobs(sequence, prompt_logprobs_last_n=n))
            )
        data: list[types.Datum] = []
        kl: list[float] = []
        teacher_lp: list[float] = []
        for i, tokens, logprobs, mine, theirs in scored:
            n = len(tokens)
            t = [float(v) for v in service_call("compute_logprobs", theirs.result)[-n:]]
            s = (
                logprobs
                if logprobs is not None
                else [float(v) for v in service_call("compute_logprobs", mine.result)[-n:]]
            )
            advantages = [-(a - b) for a, b in zip(s, t, strict=True)]
            data.append(policy_datum(self.prompts[i], tokens, s, advantages))
            kl += [a - b for a, b in zip(s, t, strict=True)]
            teacher_lp += t
        metrics = {
            "distill/reverse_kl": float(np.mean(kl)) if kl else 0.0,
            "distill/teacher_logp": float(np.mean(teacher_lp)) if teacher_lp else 0.0,
            "distill/on_policy": float(on_policy),
            "rollout/mean_completion_length": float(np.mean([len(c[1]) for c in completions])) if completions else 0.0,
        }
        # train/loss is the per-token reverse KL the advantages carry (the surrogate's value at ratio 1).
        return Batch(data, "importance_sampling", metrics=metrics, loss=metrics["distill/reverse_kl"])

    def hyperparams(self) -> dict[str, Any]:
        return {"n_train_rows": len(self.items), "teacher_resolved": self.teacher_name}
