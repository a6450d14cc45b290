"""``sdft`` on Tinker: Self-Distillation Fine-Tuning (Shenfeld et al.; BEHAVIOR 1.13).

Each step (1) the student (current weights) samples a completion from the question alone; (2) the
teacher, the frozen base model shown the golden answer as an in-context demonstration, scores that
completion and returns its top-K logprobs at every completion position; (3) the student is trained
with cross-entropy towards the teacher's top-K distribution renormalised over those K tokens,
skipping the first ``skip_first_n_tokens`` positions.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from tinker import types

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.data_types import PromptExample, TargetFormat, parse_rows
from evsys_sdk.spec.protocols import RunContext
from evsys_tinker import _chat
from evsys_tinker._data import batch_indices
from evsys_tinker._loop import Batch, Session, service_call
from evsys_tinker.config import TinkerSDFTConfig
from evsys_tinker.seam import SamplingClient


class SDFTRecipe:
    def __init__(self, config: TinkerSDFTConfig, ctx: RunContext) -> None:
        self.config = config
        rows = ctx.extras.get("train_rows") or []
        if not rows:
            raise EvsysError(
                "tinker_sdft needs train_rows: give the run `data` with rows {inputs: {question}, expected}"
            )
        examples: list[PromptExample] = parse_rows(rows, TargetFormat.PROMPT_DATASET)  # type: ignore[assignment]
        self.items: list[tuple[str, str]] = []
        for i, ex in enumerate(examples):
            question = ex.inputs.get("question")
            if not isinstance(question, str) or not question:
                raise EvsysError(
                    f"row {i}: sdft needs inputs.question (a non-empty string); inputs={sorted(ex.inputs)}"
                )
            answer = ex.expected if isinstance(ex.expected, str) else json.dumps(ex.expected)
            self.items.append((question, answer))
        self.teacher: SamplingClient | None = None

    def n_items(self) -> int:
        return len(self.items)

    def setup(self, session: Session) -> None:
        cfg = self.config
        tok = session.tokenizer
        self.stop = _chat.stop_tokens(tok)
        self.student_prompts = [
            _chat.prompt_tokens(
                tok,
                _chat.user_prompt(cfg.system_prompt, cfg.user_template.format(question=q)),
                enable_thinking=cfg.enable_thinking,
            )
            for q, _ in self.items
        ]
        self.teacher_prompts = [
            _chat.prompt_tokens(
                tok,
                _chat.user_prompt(cfg.system_prompt, cfg.demo_template.format(question=q, answer=a)),
                enable_thinking=cfg.enable_thinking,
            )
            for q, a in self.items
        ]
        self.teacher = service_call(
            "create_sampling_client", lambda: session.connector.sampling_client(base_model=session.model_name)
        )

    def batch(self, session: Session, step: int) -> Batch:
        cfg = self.config
        every = cfg.teacher_sync_every
        if every and step > 1 and (step - 1) % every == 0:
            self.teacher = service_call("save_weights_and_get_sampling_client", session.sampler)
        assert self.teacher is not None
        picked = batch_indices(len(self.items), cfg.batch_size, step, cfg.seed)
        student = service_call("save_weights_and_get_sampling_client", session.sampler)
        params = types.SamplingParams(max_tokens=cfg.max_tokens, temperature=cfg.temperature, stop=self.stop)
        samples = [student.sample(types.ModelInput.from_ints(self.student_prompts[i]), 1, params) for i in picked]
        completions = [list(service_call("sample", f.result).sequences[0].tokens) for f in samples]
        truncated = 0
        scored = []
        for i, completion in zip(picked, completions, strict=True):
            if not completion:
                continue
            sequence = self.teacher_prompts[i] + completion
            if len(sequence) > cfg.max_context_length:  # keep the end: the completion is what gets scored
                sequence = sequence[-cfg.max_context_length :]
                completion = completion[-(cfg.max_context_length - 1) :]
                truncated += 1
            future = self.teacher.sample(
                types.ModelInput.from_ints(sequence),
                1,
                types.SamplingParams(max_tokens=1),
                topk_prompt_logprobs=cfg.topk,
            )
            scored.append((i, completion, len(sequence), future))
        data: list[types.Datum] = []
        entropies: list[float] = []
        n_tokens = 0
        for i, completion, length, future in scored:
            topk = service_call("sample", future.result).topk_prompt_logprobs or []
            datum, ents = self._datum(self.student_prompts[i], completion, topk[length - len(completion) : length])
            if datum is not None:
                data.append(datum)
                entropies += ents
                n_tokens += len(completion)
        metrics = {
            "sdft/num_datums": float(len(data)),
            "sdft/topk": float(cfg.topk),
            "sdft/teacher_truncated_count": float(truncated),
        }
        if n_tokens:
            metrics["sdft/total_completion_tokens"] = float(n_tokens)
            metrics["sdft/mean_teacher_entropy"] = float(np.mean(entropies)) if entropies else 0.0
        return Batch(data, "cross_entropy", metrics=metrics)

    def _datum(
        self, prompt: list[int], completion: list[int], teacher: list[list[tuple[int, float]] | None]
    ) -> tuple[types.Datum | None, list[float]]:
        """Targets (N, K): the teacher's top-K tokens at each completion position, weighted by their
        renormalised probabilities; prompt and skipped positions weigh 0."""
        k = self.config.topk
        n = len(prompt) - 1 + len(completion)
        targets = np.zeros((n, k), dtype=np.int64)
        weights = np.zeros((n, k), dtype=np.float32)
        entropies = []
        for j, row in enumerate(teacher):
            if j < self.config.skip_first_n_tokens or not row:
                continue
            ids = np.array([t for t, _ in row], dtype=np.int64)
            lps = np.array([lp for _, lp in row], dtype=np.float64)
            q = np.exp(lps - lps.max())
            q /= q.sum()
            pos = len(prompt) - 1 + j
            targets[pos, : len(ids)] = ids
            weights[pos, : len(ids)] = q
            entropies.append(float(-(q * np.log(np.clip(q, 1e-12, None))).sum()))
        if not entropies:
            return None, []
        datum = types.Datum(
            model_input=types.ModelInput.from_ints(prompt + completion[:-1]),
            loss_fn_inputs={
                "target_tokens": types.TensorData.from_numpy(targets),
                "weights": types.TensorData.from_numpy(weights),
            },
        )
        return datum, entropies

    def hyperparams(self) -> dict[str, Any]:
        return {"n_train_rows": len(self.items)}
