"""local_dpo on TRL's DPOTrainer (one model held: LoRA's disabled adapter or precomputed reference
log-probs) and local_distill on TRL's DistillationTrainer (on-policy, GKD's lmbda mixture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CHAT_ROWS, PREFERENCE_ROWS, TASK_ROWS, TINY, local_config, metric_rows

from evsys_local.distill import prompt_rows
from evsys_sdk.run.runner import run_experiment

DPO = {"max_steps": 6, "batch_size": 4, "learning_rate": 1e-2, "lr_scheduler_type": "constant", "beta": 0.5}
DPO_KEYS = {"train/loss", "dpo/reward_margin", "dpo/reward_accuracy", "dpo/chosen_logp", "dpo/rejected_logp"}


@pytest.fixture(scope="module")
def small_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smaller model with the tiny model's tokenizer (same corpus and seed): a distillation student."""
    from evsys_local.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("student"), hidden=32, layers=1, heads=2, kv_heads=1)


def _dpo_metrics(tmp_path: Path, params: dict[str, Any]) -> tuple[Any, list[dict[str, float]]]:
    [result] = run_experiment(local_config(tmp_path, "dpo", {**DPO, **params}, PREFERENCE_ROWS))
    assert result.status == "completed", result.error
    rows = [r["metrics"] for r in metric_rows(tmp_path / "contract") if "dpo/reward_margin" in r["metrics"]]
    return result, rows


@pytest.mark.parametrize("lora_rank", [8, 0])
def test_dpo_reference_is_the_starting_weights_and_preferences_are_learned(tmp_path: Path, lora_rank: int) -> None:
    """Step 1 scores the policy before any update: a margin of exactly 0 means the reference is the
    starting model (LoRA: adapter disabled; full fine-tuning: precomputed log-probs)."""
    result, rows = _dpo_metrics(tmp_path, {"lora_rank": lora_rank})
    assert len(rows) == DPO["max_steps"] and all(set(r) >= DPO_KEYS for r in rows)
    assert rows[0]["dpo/reward_margin"] == pytest.approx(0.0, abs=1e-6)
    assert rows[0]["train/loss"] == pytest.approx(0.6931, abs=1e-3)  # -log sigmoid(0)
    assert rows[-1]["dpo/reward_margin"] > 0.1 and rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert result.metrics["dpo/reward_accuracy"] == rows[-1]["dpo/reward_accuracy"]
    assert Path(result.artifacts["final_checkpoint"], "adapter_config.json").exists() is (lora_rank > 0)


def test_dpo_reference_checkpoint_and_combined_losses(tmp_path: Path) -> None:
    """A reference other than the start gives a non-zero margin at step 1; listed losses combine."""
    [sft] = run_experiment(local_config(tmp_path / "sft", "sft", {"max_steps": 4, "learning_rate": 1e-2}, CHAT_ROWS))
    assert sft.status == "completed", sft.error
    params = {"reference": sft.artifacts["final_checkpoint"], "loss_type": ["sigmoid", "sft"], "loss_weights": [1, 0.5]}
    _, rows = _dpo_metrics(tmp_path / "dpo", {**params, "max_steps": 2})
    assert abs(rows[0]["dpo/reward_margin"]) > 1e-4


def test_dpo_rejects_harbor_tasks_with_the_transform_named(tmp_path: Path) -> None:
    [result] = run_experiment(local_config(tmp_path, "dpo", DPO, TASK_ROWS))
    assert result.status == "failed" and "on_policy_pairs" in (result.error or "")


def test_prompt_rows_take_every_row_form() -> None:
    rows = [CHAT_ROWS[0], TASK_ROWS[1], {"prompt": "p", "completion": "c"}, {"prompt": "q"}]
    assert prompt_rows(rows) == [
        ([{"role": "user", "content": "0+0"}], "0"),
        ([{"role": "user", "content": "1+1"}], "2"),
        ([{"role": "user", "content": "p"}], "c"),
        ([{"role": "user", "content": "q"}], None),
    ]


DISTILL = {"max_steps": 6, "batch_size": 4, "learning_rate": 1e-2, "max_completion_tokens": 6, "lora_rank": 0}


def test_distill_student_moves_towards_the_teacher(tmp_path: Path, small_student: Path) -> None:
    params = {**DISTILL, "teacher": str(TINY), "student": str(small_student), "lmbda": 0.5, "beta": 0.5}
    [result] = run_experiment(local_config(tmp_path, "distill", params, CHAT_ROWS))
    assert result.status == "completed", result.error
    losses = [r["metrics"]["train/loss"] for r in metric_rows(tmp_path / "contract") if "train/loss" in r["metrics"]]
    assert len(losses) == 6 and sum(losses[-2:]) < sum(losses[:2])
    assert 0 < result.metrics["distill/on_policy_fraction"] < 1
    final = Path(result.artifacts["final_checkpoint"], "evsys_checkpoint.json").read_text(encoding="utf-8")
    assert str(small_student) in final  # the checkpoint is the student's


def test_distill_errors_name_the_fix(tmp_path: Path) -> None:
    from evsys_local.testing import make_tiny_model

    no_answers = [{"prompt": "1+1"}, {"prompt": "2+2"}]
    [lmbda] = run_experiment(
        local_config(tmp_path / "a", "distill", {**DISTILL, "teacher": str(TINY), "lmbda": 0.5}, no_answers)
    )
    assert "set lmbda: 1" in (lmbda.error or "")
    other = make_tiny_model(tmp_path / "other_vocab", vocab_size=300)
    [vocab] = run_experiment(local_config(tmp_path / "b", "distill", {**DISTILL, "teacher": str(other)}, CHAT_ROWS))
    assert "sharing a tokenizer" in (vocab.error or "")


def test_sft_teacher_then_distill_student_in_one_combo(tmp_path: Path, small_student: Path) -> None:
    phases = [
        {"kind": "sft", "name": "teacher", "config": {"max_steps": 4, "learning_rate": 1e-2, "lora_rank": 0}},
        {
            "kind": "distill",
            "name": "student",
            "config": {**DISTILL, "max_steps": 2, "teacher": "previous", "student": str(small_student)},
        },
    ]
    [result] = run_experiment(local_config(tmp_path, "combo", {"phases": phases}, CHAT_ROWS))
    assert result.status == "completed", result.error
    assert result.artifacts["final_checkpoint"] == result.artifacts["student/final_checkpoint"]
    [hyper] = (tmp_path / "contract" / "logs").glob("hyperparams*")
    logged = json.loads(hyper.read_text(encoding="utf-8"))
    assert logged["teacher_resolved"] == result.artifacts["teacher/final_checkpoint"]
    assert logged["student_resolved"] == str(small_student)
