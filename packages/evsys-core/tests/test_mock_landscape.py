"""The mock landscape: smooth in learning rate (with an optimum), rank (saturating) and epochs, seeded noise."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

import pytest

from evsys_sdk.builtins.mock_landscape import LR_OPTIMUM, NOISE_SD, landscape, skill_without_noise
from evsys_sdk.run.runner import run_experiment

pytestmark = pytest.mark.timeout(60)


def test_learning_rate_has_an_optimum() -> None:
    lrs = [1e-6, 1e-5, 1e-4, LR_OPTIMUM, 1e-3, 1e-2]
    skills = [skill_without_noise({"learning_rate": lr, "lora_rank": 16}) for lr in lrs]
    best = skills.index(max(skills))
    assert lrs[best] == LR_OPTIMUM
    assert skills[:best] == sorted(skills[:best]) and skills[best:] == sorted(skills[best:], reverse=True)
    # smooth: a 1% step in the learning rate moves the skill by far less than the noise
    near = skill_without_noise({"learning_rate": 1.01e-4, "lora_rank": 16})
    assert abs(near - skills[2]) < NOISE_SD / 10


def test_rank_saturates_and_epochs_help() -> None:
    ranks = [1, 4, 8, 16, 32, 64, 128]
    skills = [skill_without_noise({"lora_rank": r}) for r in ranks]
    assert skills == sorted(skills)
    gains = [b - a for a, b in itertools.pairwise(skills)]
    assert gains[-1] < gains[1] / 10  # rank 64 -> 128 gains little next to 4 -> 8
    assert skill_without_noise({"lora_rank": 0}) >= skills[-1]  # full fine-tuning: no rank bottleneck
    by_epochs = [skill_without_noise({"num_epochs": e}) for e in (1, 2, 3)]
    assert by_epochs == sorted(by_epochs) and by_epochs[0] < by_epochs[2] < 1.0


def test_noise_is_seeded_and_of_its_documented_size() -> None:
    params: dict[str, Any] = {"learning_rate": 1e-4, "lora_rank": 16, "num_epochs": 1}
    assert landscape(params, 3) == landscape(dict(params), 3)
    values = [landscape(params, seed) for seed in range(400)]
    assert len(set(values)) == 400
    assert statistics.fmean(values) == pytest.approx(skill_without_noise(params), abs=0.005)
    assert statistics.stdev(values) == pytest.approx(NOISE_SD, rel=0.15)
    assert landscape(params, 3) != landscape({**params, "lora_rank": 17}, 3)
    assert all(0.0 <= landscape({"learning_rate": 1e-9, "lora_rank": 1}, s) < 1 for s in range(50))


def test_mock_sft_follows_the_landscape(experiment: Any, mock_run: Any) -> None:
    """Same config and seed: same numbers; a higher rank: a lower final loss, and recalls more rows."""
    runs = [
        mock_run(name, params={"lora_rank": rank, "num_epochs": 2}) for name, rank in [("a", 4), ("b", 32), ("c", 4)]
    ]
    a, b, again = run_experiment(experiment(runs=runs))
    assert a.metrics == again.metrics
    assert b.metrics["train/final_loss"] < a.metrics["train/final_loss"]
    skill = landscape({"lora_rank": 32, "num_epochs": 2, "learning_rate": 1e-4}, 42)
    assert b.metrics["train/final_loss"] == pytest.approx(0.05 + 1.95 * (1 - skill))
