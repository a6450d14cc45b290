"""Datum builders shared by the recipes (Tinker's alignment: position i of model_input predicts token i+1)."""

from __future__ import annotations

import numpy as np
from tinker import types


def supervised_datum(tokens: list[int], weights: list[float]) -> types.Datum:
    """Cross-entropy on the tokens whose weight is non-zero."""
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(np.asarray(tokens[1:], dtype=np.int64)),
            "weights": types.TensorData.from_numpy(np.asarray(weights[1:], dtype=np.float32)),
        },
    )


def policy_datum(
    prompt: list[int], completion: list[int], logprobs: list[float], advantage: float | list[float]
) -> types.Datum:
    """An importance-sampling datum: the completion's tokens carry the sampler's logprobs and the
    advantage (one for the whole completion, or one per token)."""
    n_prompt = len(prompt) - 1
    per_token = advantage if isinstance(advantage, list) else [advantage] * len(completion)
    advantages = [0.0] * n_prompt + per_token
    return types.Datum(
        model_input=types.ModelInput.from_ints(prompt + completion[:-1]),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(np.asarray(prompt[1:] + completion, dtype=np.int64)),
            "logprobs": types.TensorData.from_numpy(np.asarray([0.0] * n_prompt + logprobs, dtype=np.float32)),
            "advantages": types.TensorData.from_numpy(np.asarray(advantages, dtype=np.float32)),
        },
    )


def epoch_order(n: int, epoch: int, seed: int) -> list[int]:
    """A per-epoch shuffle of ``range(n)``, reproducible from the seed."""
    return [int(i) for i in np.random.default_rng([seed, epoch]).permutation(n)]


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """The rows of 1-based ``step``: consecutive slices of each epoch's shuffle, wrapping around."""
    per_epoch = max(1, n // batch_size)
    epoch, offset = divmod(step - 1, per_epoch)
    order = epoch_order(n, epoch, seed)
    start = offset * batch_size
    return [order[(start + i) % n] for i in range(min(batch_size, n))]
