"""tinker_dpo and tinker_distill on the emulator: the client-side DPO loss, its linearisation, the frozen
reference, on-policy reverse-KL distillation, the lmbda mixture and the sft -> distill combo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CHAT_ROWS, EMULATOR, MODEL, PREFERENCE_ROWS
from pydantic import ValidationError
from test_training import metrics, run

from evsys_sdk.run.runner import run_experiment
from evsys_sdk.testing import mock_experiment_config
from evsys_tinker._dpo import REFERENCE_FILE, dpo_loss
from evsys_tinker.config import TinkerDistillConfig, TinkerDPOConfig

DPO = {"max_steps": 10, "batch_size": 4, "learning_rate": 1e-3, "beta": 0.5}


@pytest.mark.parametrize("name", ["sigmoid", "robust", "hinge", "ipo"])
def test_dpo_loss_gradients_match_finite_differences(name: str) -> None:
    h = np.array([-2.0, -0.3, 0.4, 3.0])
    loss, grad = dpo_loss(name, h, beta=0.7, eps=0.1)
    step = 1e-6
    numeric = (dpo_loss(name, h + step, 0.7, 0.1)[0] - dpo_loss(name, h - step, 0.7, 0.1)[0]) / (2 * step)
    assert grad == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    if name == "sigmoid":
        assert loss[2] == pytest.approx(-(0.9 * np.log(1 / (1 + np.exp(-0.28))) + 0.1 * np.log(1 / (1 + np.exp(0.28)))))


def test_dpo_learns_the_preferences_against_the_starting_weights(tmp_path: Path) -> None:
    result = run(tmp_path, "dpo", DPO, PREFERENCE_ROWS)
    assert result.status == "completed", result.error
    steps = metrics(tmp_path)
    first, last = steps[0], steps[-1]
    assert first["dpo/reward_margin"] == pytest.approx(0.0, abs=1e-5)  # the reference is the start
    assert first["train/loss"] == pytest.approx(np.log(2), abs=1e-4)
    assert last["dpo/reward_margin"] > 0.5 and last["dpo/reward_accuracy"] == 1.0
    assert last["train/loss"] < 0.5 * first["train/loss"]
    assert last["dpo/chosen_logp"] > first["dpo/chosen_logp"] or last["dpo/rejected_logp"] < first["dpo/rejected_logp"]
    assert result.metrics["dpo/reward_accuracy"] == 1.0
    reference = json.loads((tmp_path / "arm" / REFERENCE_FILE).read_text(encoding="utf-8"))
    assert len(reference) == len(PREFERENCE_ROWS)


def test_resumed_dpo_keeps_scoring_against_the_original_reference(tmp_path: Path) -> None:
    first = run(tmp_path, "dpo", {**DPO, "max_steps": 4}, PREFERENCE_ROWS)
    assert first.status == "completed", first.error
    resumed = run(
        tmp_path,
        "dpo",
        {**DPO, "max_steps": 1},
        PREFERENCE_ROWS,
        model={**MODEL, "load_checkpoint_path": first.artifacts["state-final"]},
    )
    assert resumed.status == "completed", resumed.error
    # Against a fresh snapshot of the resumed weights the margin would be exactly 0 again.
    assert metrics(tmp_path)[0]["dpo/reward_margin"] > 0.05


def test_dpo_sft_term_raises_the_chosen_logp(tmp_path: Path) -> None:
    plain = run(tmp_path / "a", "dpo", DPO, PREFERENCE_ROWS)
    mixed = run(
        tmp_path / "b", "dpo", {**DPO, "loss_type": ["sigmoid", "sft"], "loss_weights": [1, 1]}, PREFERENCE_ROWS
    )
    assert plain.status == mixed.status == "completed", (plain.error, mixed.error)
    assert metrics(tmp_path / "b")[-1]["dpo/chosen_logp"] > metrics(tmp_path / "a")[-1]["dpo/chosen_logp"]


def test_tinker_only_narrows_what_it_cannot_compute() -> None:
    with pytest.raises(ValidationError, match="run on backend local"):
        TinkerDPOConfig(loss_type=["sigmoid", "nca_pair"])
    with pytest.raises(ValidationError, match="tinker://"):
        TinkerDPOConfig(reference="/some/dir")
    with pytest.raises(ValidationError, match="reverse KL"):
        TinkerDistillConfig(teacher="t", beta=0.5)


DISTILL = {
    "max_steps": 20,
    "batch_size": 4,
    "learning_rate": 1e-3,
    "max_completion_tokens": 16,
    "teacher": "Qwen/Qwen3-8B",
}


def test_distill_lowers_the_reverse_kl_to_the_teacher(tmp_path: Path) -> None:
    result = run(tmp_path, "distill", DISTILL, CHAT_ROWS)
    assert result.status == "completed", result.error
    kl = [m["distill/reverse_kl"] for m in metrics(tmp_path)]
    assert np.mean(kl[-5:]) < 0.5 * np.mean(kl[:2])  # a sampled estimate: compare windows
    assert all(m["distill/on_policy"] == 1.0 for m in metrics(tmp_path))


def test_distill_lmbda_mixes_in_the_rows_answers(tmp_path: Path) -> None:
    result = run(tmp_path, "distill", {**DISTILL, "max_steps": 8, "lmbda": 0.5}, CHAT_ROWS)
    assert result.status == "completed", result.error
    assert {m["distill/on_policy"] for m in metrics(tmp_path)} == {0.0, 1.0}
    no_answers = [{"prompt": "hi"}, {"prompt": "yo"}]
    failed = run(tmp_path / "b", "distill", {**DISTILL, "lmbda": 0.5}, no_answers)
    assert "set lmbda: 1" in (failed.error or "")


def test_sft_teacher_then_distill_student_in_one_combo(tmp_path: Path) -> None:
    phases = [
        {"kind": "sft", "name": "teacher", "config": {"max_steps": 6, "batch_size": 4, "learning_rate": 1e-3}},
        {
            "kind": "distill",
            "name": "student",
            "config": {**DISTILL, "max_steps": 4, "teacher": "previous", "student": "Qwen/Qwen3-1.7B"},
        },
    ]
    config = mock_experiment_config(
        tmp_path,
        "combo",
        params={"phases": phases},
        rows=CHAT_ROWS,
        backend="tinker",
        backend_params=EMULATOR,
        model=MODEL,
    )
    [result] = run_experiment(config)
    assert result.status == "completed", result.error
    logged = json.loads((tmp_path / "contract" / "logs" / "hyperparams.json").read_text(encoding="utf-8"))
    assert logged["teacher_resolved"] == result.artifacts["teacher/final_checkpoint"]
    assert logged["model_name"] == "Qwen/Qwen3-1.7B" and logged["init_from"] is None


def test_emulator_compute_logprobs_scores_the_last_n_like_the_sdk(tmp_path: Path) -> None:
    from tinker import types

    from evsys_tinker.testing import FakeTinker, api_error

    fake = FakeTinker(tmp_path)
    sampler = fake.sampling_client(base_model=MODEL["name"])
    prompt = types.ModelInput.from_ints([5, 9, 12, 7, 3])
    full = sampler.compute_logprobs(prompt).result()
    tail = sampler.compute_logprobs(prompt, prompt_logprobs_last_n=2).result()
    assert full[0] is None and all(v is not None for v in full[1:])
    assert tail == [None, None, None, *full[3:]]
    with pytest.raises(Exception, match="prompt_logprobs_last_n must be in"):
        sampler.compute_logprobs(prompt, prompt_logprobs_last_n=5).result()
    fake.fail_next("compute_logprobs", api_error(429, "slow down"))
    with pytest.raises(Exception, match="slow down"):
        sampler.compute_logprobs(prompt).result()
