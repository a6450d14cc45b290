"""``dpo`` on Tinker: preference pairs, the DPO loss over the training client's log-probs.

The reference is a frozen sampler: a snapshot of the weights training starts from (``reference: base``)
or a sampler checkpoint. Its completion log-probs are computed once, before training, and kept in the
run directory, so a resumed run scores against the same reference. Each step is the SDK's
``forward_backward_custom`` formulation done in numpy (verified against tinker 0.38's
``TrainingClient._compute_custom_loss``): a ``forward`` gives the policy's target log-probs, the loss and
its gradient d loss / d logprob are computed here, and ``forward_backward`` with ``cross_entropy`` and
``weights = -gradient`` back-propagates it (cross-entropy is ``-sum(weights * logprobs)``). No torch is
needed client-side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tinker import types

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.data_types import PreferenceRow, TargetFormat, parse_rows
from evsys_sdk.spec.protocols import RunContext
from evsys_tinker import _chat
from evsys_tinker._data import batch_indices, supervised_datum
from evsys_tinker._loop import Batch, Session, service_call
from evsys_tinker.config import TinkerDPOConfig

REFERENCE_FILE = "reference_logprobs.json"
Pair = tuple[tuple[list[int], list[float]], tuple[list[int], list[float]]]  # (chosen, rejected) tokens, weights


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def dpo_loss(name: str, h: np.ndarray, beta: float, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair loss and d loss / d h for ``h`` = (policy - reference) log-ratio of chosen minus rejected,
    as TRL's DPOTrainer defines each loss."""
    z = beta * h
    if name == "sigmoid":  # DPO; label smoothing = conservative DPO
        loss = -(1 - eps) * np.log(_sigmoid(z)) - eps * np.log(_sigmoid(-z))
        grad = beta * (-(1 - eps) * _sigmoid(-z) + eps * _sigmoid(z))
    elif name == "robust":  # unbiased under label noise eps
        loss = (-(1 - eps) * np.log(_sigmoid(z)) + eps * np.log(_sigmoid(-z))) / (1 - 2 * eps)
        grad = beta * (-(1 - eps) * _sigmoid(-z) - eps * _sigmoid(z)) / (1 - 2 * eps)
    elif name == "hinge":
        loss = np.maximum(0.0, 1.0 - z)
        grad = np.where(z < 1.0, -beta, 0.0)
    elif name == "ipo":
        loss = (h - 1 / (2 * beta)) ** 2
        grad = 2 * (h - 1 / (2 * beta))
    else:
        raise ValueError(f"loss {name!r} is not a pairwise loss here")
    return loss, grad


class DPORecipe:
    def __init__(self, config: TinkerDPOConfig, ctx: RunContext) -> None:
        self.config = config
        self.ctx = ctx
        rows = ctx.extras.get("train_rows") or []
        if not rows:
            raise EvsysError("tinker_dpo needs train_rows: give the run `data` with {prompt, chosen, rejected} rows")
        try:
            self.rows: list[PreferenceRow] = parse_rows(rows, TargetFormat.PREFERENCE)  # type: ignore[assignment]
        except (KeyError, ValueError) as exc:
            raise EvsysError(f"tinker_dpo: {exc.args[0] if exc.args else exc}") from None
        self.pairs: list[Pair] = []
        self.reference: list[tuple[float, float]] = []

    def n_items(self) -> int:
        return len(self.rows)

    def _sequence(
        self, tok: Any, prompt: list[dict[str, str]], reply: list[dict[str, str]]
    ) -> tuple[list[int], list[float]]:
        """Prompt tokens (weight 0) then the reply's tokens (weight 1), as the model would sample them."""
        cfg = self.config
        head = _chat.prompt_tokens(tok, prompt, enable_thinking=cfg.enable_thinking)
        full = _chat.render_text(tok, prompt + reply, generation_prompt=False, enable_thinking=cfg.enable_thinking)
        start = _chat.render_text(tok, prompt, generation_prompt=True, enable_thinking=cfg.enable_thinking)
        if not full.startswith(start):
            raise EvsysError("the model's chat template does not render a reply as an extension of its prompt")
        body = list(tok.encode(full[len(start) :], add_special_tokens=False))
        tokens, weights = (head + body)[: cfg.max_seq_len], ([0.0] * len(head) + [1.0] * len(body))[: cfg.max_seq_len]
        if sum(weights[1:]) == 0:
            raise EvsysError(f"a preference pair has no completion token left within max_seq_len={cfg.max_seq_len}")
        return tokens, weights

    def setup(self, session: Session) -> None:
        tok = session.tokenizer
        for row in self.rows:
            # String pairs are rendered as a user turn and an assistant reply, as Tinker's chat models see them.
            prompt = _chat.normalize(
                row.prompt if isinstance(row.prompt, list) else [{"role": "user", "content": row.prompt}]
            )
            replies = [
                r if isinstance(r, list) else [{"role": "assistant", "content": r}] for r in (row.chosen, row.rejected)
            ]
            chosen, rejected = (self._sequence(tok, prompt, _chat.normalize(r)) for r in replies)
            self.pairs.append((chosen, rejected))
        self.reference = self._reference_logprobs(session)

    def _reference_logprobs(self, session: Session) -> list[tuple[float, float]]:
        """Summed completion log-probs of every pair under the frozen reference (cached in the run dir)."""
        cache = Path(self.ctx.output_dir) / REFERENCE_FILE
        if cache.exists():
            saved = json.loads(cache.read_text(encoding="utf-8"))
            if len(saved) == len(self.pairs):
                return [(float(c), float(r)) for c, r in saved]
        if self.config.reference == "base":
            sampler = service_call("save_weights_and_get_sampling_client", session.sampler)
        else:
            sampler = service_call(
                "create_sampling_client", lambda: session.connector.sampling_client(model_path=self.config.reference)
            )
        futures = [
            [sampler.compute_logprobs(types.ModelInput.from_ints(tokens)) for tokens, _ in pair] for pair in self.pairs
        ]
        out = []
        for pair, (fc, fr) in zip(self.pairs, futures, strict=True):
            sums = []
            for (_, weights), future in zip(pair, (fc, fr), strict=True):
                logprobs = service_call("compute_logprobs", future.result)
                sums.append(
                    sum(float(lp) * w for lp, w in zip(logprobs[1:], weights[1:], strict=True) if lp is not None)
                )
            out.append((sums[0], sums[1]))
        cache.write_text(json.dumps(out), encoding="utf-8")
        return out

    def batch(self, session: Session, step: int) -> Batch:
        cfg = self.config
        picked = batch_indices(len(self.pairs), cfg.batch_size, step, cfg.seed)
        data = [supervised_datum(*seq) for i in picked for seq in self.pairs[i]]
        forward = service_call("forward", session.training.forward(data, "cross_entropy").result)
        logprobs = [out["logprobs"].to_numpy().astype(np.float64) for out in forward.loss_fn_outputs]
        masks = [d.loss_fn_inputs["weights"].to_numpy().astype(np.float64) for d in data]
        sums = np.array([float((lp * m).sum()) for lp, m in zip(logprobs, masks, strict=True)])
        chosen, rejected = sums[0::2], sums[1::2]
        ref = np.array([self.reference[i] for i in picked])
        h = (chosen - ref[:, 0]) - (rejected - ref[:, 1])
        n = len(picked)
        loss = np.zeros(n)
        grad_h = np.zeros(n)  # d loss / d h per pair
        grad_chosen = np.zeros(n)  # extra d loss / d (summed chosen logprob), from the sft term
        for name, weight in cfg.losses():
            if name == "sft":  # NLL of the chosen reply, per token
                n_tokens = np.array([masks[2 * j].sum() for j in range(n)])
                loss += weight * -chosen / n_tokens
                grad_chosen += weight * -1.0 / n_tokens
            else:
                part, grad = dpo_loss(name, h, cfg.beta, cfg.label_smoothing)
                loss += weight * part
                grad_h += weight * grad
        # Mean over pairs; a token's gradient is its sequence's (the log-prob sums are linear in tokens).
        weights = []
        for j in range(n):
            weights += [(grad_h[j] + grad_chosen[j]) / n, -grad_h[j] / n]
        linear = [
            types.Datum(
                model_input=d.model_input,
                loss_fn_inputs={
                    "target_tokens": d.loss_fn_inputs["target_tokens"],
                    "weights": types.TensorData.from_numpy((-g * m).astype(np.float32)),
                },
            )
            for d, m, g in zip(data, masks, weights, strict=True)
        ]
        metrics = {
            "dpo/reward_margin": float(np.mean(cfg.beta * h)),
            "dpo/reward_accuracy": float(np.mean(h > 0)),
            "dpo/chosen_logp": float(np.mean(chosen)),
            "dpo/rejected_logp": float(np.mean(rejected)),
            "dpo/chosen_reward": float(np.mean(cfg.beta * (chosen - ref[:, 0]))),
            "dpo/rejected_reward": float(np.mean(cfg.beta * (rejected - ref[:, 1]))),
        }
        return Batch(linear, "cross_entropy", metrics=metrics, loss=float(loss.mean()))

    def hyperparams(self) -> dict[str, Any]:
        return {"n_train_rows": len(self.rows)}
