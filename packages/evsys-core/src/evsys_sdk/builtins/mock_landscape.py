"""The mock backend's learning landscape: how much a mock run learns, from its hyperparameters and seed.

``landscape(params, seed)`` is the run's *skill* in [0, 1): the share of its training rows the mock
model recalls after training, and the share of the loss it removes. It is smooth in the three
hyperparameters a real fine-tune is most sensitive to, with a real optimum, plus seed noise:

    lr_factor   = exp(-(log10(learning_rate / LR_OPTIMUM))² / (2·LR_WIDTH²))   1 at 3e-4, 0.61 a decade off
    rank_factor = 1 - exp(-lora_rank / RANK_SCALE)                           saturates; 0 (full fine-tune) = 1
    skill       = 1 - exp(-RATE · num_epochs · lr_factor · rank_factor) + noise

``noise`` is Gaussian with standard deviation ``NOISE_SD`` (0.02), drawn from the seed and the three
hyperparameters: two seeds of one config differ by it, the same config and seed always give the same
number. The result is clipped to [0, MAX_SKILL]. Missing params take the family defaults (learning
rate 1e-4, rank 8, 1 epoch). Some points, noise aside: rank 4 / 16 / 32 at lr 1e-4 and 1 epoch give
0.30 / 0.54 / 0.58; lr 1e-5 / 1e-4 / 3e-4 / 1e-2 at rank 16 give 0.25 / 0.54 / 0.58 / 0.24.

The mock algorithms (``evsys_sdk.builtins.mock``) train on it: SFT's loss falls from ``LOSS_START``
towards ``LOSS_FLOOR`` as ``LOSS_FLOOR + (LOSS_START - LOSS_FLOOR)·(1 - skill)^progress``; RL's reward
rises from 0.1 to ``0.1 + 0.8·skill``; each training row is recalled from a progress drawn per seed and
row, so a benchmark of training rows scores about ``skill``. Searches use it directly as an objective.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

__all__ = ["LR_OPTIMUM", "NOISE_SD", "landscape", "skill_without_noise"]

LR_OPTIMUM = 3e-4
LR_WIDTH = 1.0  # decades of learning rate per standard deviation of the bell
RANK_SCALE = 8.0
RATE = 1.0
NOISE_SD = 0.02
MAX_SKILL = 0.999
LOSS_START = 2.0
LOSS_FLOOR = 0.05


def _knobs(params: Mapping[str, Any]) -> tuple[float, int, int]:
    lr = float(params.get("learning_rate") or 1e-4)
    rank = params.get("lora_rank")
    epochs = params.get("num_epochs")
    return lr, 8 if rank is None else int(rank), 1 if epochs is None else int(epochs)


def skill_without_noise(params: Mapping[str, Any]) -> float:
    """The landscape's smooth part (what the seeds average to, before clipping)."""
    lr, rank, epochs = _knobs(params)
    lr_factor = math.exp(-(math.log10(lr / LR_OPTIMUM) ** 2) / (2 * LR_WIDTH**2))
    rank_factor = 1.0 if rank == 0 else 1.0 - math.exp(-rank / RANK_SCALE)
    return 1.0 - math.exp(-RATE * max(epochs, 0) * lr_factor * rank_factor)


def landscape(params: Mapping[str, Any], seed: int) -> float:
    """The skill of a mock run with these params (learning_rate, lora_rank, num_epochs) and seed."""
    lr, rank, epochs = _knobs(params)
    noise = random.Random(f"mock-landscape:{seed}:{lr!r}:{rank}:{epochs}").gauss(0.0, NOISE_SD)
    return min(MAX_SKILL, max(0.0, skill_without_noise(params) + noise))
