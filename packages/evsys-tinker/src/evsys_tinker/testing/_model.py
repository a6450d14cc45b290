"""The emulator's model: a tiny numpy language model with Tinker's loss functions and an Adam optimizer.

logits(next | ..., a, b) = bigram[b] + trigram[hash(a, b)]: two lookup tables, so a forward/backward
is a gather and a scatter-add, fast enough for CI, and training really changes what it samples.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BUCKETS = 1024
EOS_BIAS = 0.5  # a fresh model ends its turn now and then (about every 90 tokens when sampling)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


@dataclass
class Adam:
    m: dict[str, np.ndarray] = field(default_factory=dict)
    v: dict[str, np.ndarray] = field(default_factory=dict)
    t: int = 0


class ToyLM:
    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.params = params
        self.grads = {k: np.zeros_like(v) for k, v in params.items()}
        self.adam = Adam()

    @classmethod
    def base(cls, base_model: str, vocab_size: int, eos_ids: list[int]) -> ToyLM:
        """The deterministic "pretrained" weights of ``base_model`` (seeded by its name)."""
        rng = np.random.default_rng(zlib.crc32(base_model.encode()))
        bigram = rng.normal(0.0, 0.5, (vocab_size, vocab_size)).astype(np.float32)
        bigram[:, eos_ids] += EOS_BIAS
        return cls({"bigram": bigram, "trigram": np.zeros((BUCKETS, vocab_size), np.float32)})

    @property
    def vocab_size(self) -> int:
        return int(self.params["bigram"].shape[0])

    @staticmethod
    def _buckets(tokens: np.ndarray) -> np.ndarray:
        prev = np.concatenate([[-1], tokens[:-1]]).astype(np.int64)
        return (((prev + 1) * 1_000_003 + tokens.astype(np.int64)) % BUCKETS).astype(np.int64)

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """(n, V): row i scores the token after ``tokens[i]``."""
        out: np.ndarray = self.params["bigram"][tokens] + self.params["trigram"][self._buckets(tokens)]
        return out

    def next_logits(self, tokens: list[int]) -> np.ndarray:
        a = tokens[-2] if len(tokens) > 1 else -1
        b = tokens[-1]
        bucket = ((a + 1) * 1_000_003 + b) % BUCKETS
        out: np.ndarray = self.params["bigram"][b] + self.params["trigram"][bucket]
        return out

    def log_probs(self, tokens: np.ndarray) -> np.ndarray:
        return _log_softmax(self.logits(tokens))

    # -- training -------------------------------------------------------------------------------------

    def forward_backward(
        self, tokens: np.ndarray, inputs: dict[str, np.ndarray], loss_fn: str, config: dict[str, Any], backward: bool
    ) -> tuple[float, np.ndarray]:
        """Loss and target logprobs of one datum; accumulates gradients when ``backward``."""
        logp = self.log_probs(tokens)
        probs = np.exp(logp)
        target = inputs["target_tokens"].astype(np.int64)
        rows = np.arange(len(tokens))
        if loss_fn == "cross_entropy":
            weights = inputs["weights"].astype(np.float32)
            if target.ndim == 1:  # one target per position
                target, weights = target[:, None], weights[:, None]
            lp = logp[rows[:, None], target]
            loss = float(-(weights * lp).sum())
            # d(-sum w·logp[y]) / dlogits = sum_k w_k (softmax - onehot(y_k))
            dlogits = weights.sum(axis=1, keepdims=True) * probs
            np.subtract.at(dlogits, (np.repeat(rows, target.shape[1]), target.ravel()), weights.ravel())
            out = lp[:, 0] if inputs["target_tokens"].ndim == 1 else lp
        elif loss_fn in ("importance_sampling", "ppo"):
            lp = logp[rows, target]
            ratio = np.exp(lp - inputs["logprobs"].astype(np.float32))
            adv = inputs["advantages"].astype(np.float32)
            if loss_fn == "ppo":
                low, high = float(config.get("clip_low_threshold", 0.8)), float(config.get("clip_high_threshold", 1.2))
                clipped = np.clip(ratio, low, high)
                active = ratio * adv <= clipped * adv  # the unclipped branch is the min: it carries the gradient
                objective = np.minimum(ratio * adv, clipped * adv)
                dlp = -np.where(active, ratio * adv, 0.0)
            else:
                objective = ratio * adv
                dlp = -ratio * adv
            loss = float(-objective.sum())
            onehot = np.zeros_like(probs)
            onehot[rows, target] = 1.0
            dlogits = dlp[:, None] * (onehot - probs)
            out = lp
        else:
            raise ValueError(f"loss_fn {loss_fn!r} is not emulated (cross_entropy, importance_sampling, ppo are)")
        if backward:
            np.add.at(self.grads["bigram"], tokens, dlogits)
            np.add.at(self.grads["trigram"], self._buckets(tokens), dlogits)
        return loss, out.astype(np.float32)

    def optim_step(self, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, clip: float) -> float:
        """AdamW on the accumulated gradients, which it then clears; returns the gradient norm."""
        norm = float(np.sqrt(sum(float((g * g).sum()) for g in self.grads.values())))
        scale = clip / norm if clip > 0 and norm > clip else 1.0
        self.adam.t += 1
        t = self.adam.t
        for key, param in self.params.items():
            grad = self.grads[key] * scale
            m = self.adam.m.setdefault(key, np.zeros_like(param))
            v = self.adam.v.setdefault(key, np.zeros_like(param))
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            update = (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
            param -= lr * (update + weight_decay * param)
            self.grads[key].fill(0.0)
        return norm

    # -- checkpoints ----------------------------------------------------------------------------------

    def arrays(self, *, with_optimizer: bool) -> dict[str, np.ndarray]:
        out = {f"param/{k}": v for k, v in self.params.items()}
        if with_optimizer:
            out.update({f"m/{k}": v for k, v in self.adam.m.items()})
            out.update({f"v/{k}": v for k, v in self.adam.v.items()})
            out["adam_t"] = np.array(self.adam.t)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], *, with_optimizer: bool) -> ToyLM:
        params = {k.split("/", 1)[1]: np.array(v) for k, v in arrays.items() if k.startswith("param/")}
        model = cls(params)
        if with_optimizer and "adam_t" in arrays:
            model.adam = Adam(
                m={k.split("/", 1)[1]: np.array(v) for k, v in arrays.items() if k.startswith("m/")},
                v={k.split("/", 1)[1]: np.array(v) for k, v in arrays.items() if k.startswith("v/")},
                t=int(arrays["adam_t"]),
            )
        return model

    def snapshot(self) -> ToyLM:
        return ToyLM({k: v.copy() for k, v in self.params.items()})
