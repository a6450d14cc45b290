"""local_rl rewards come from the verifiers; local_sdft distills the frozen teacher's top-K."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import PROMPT_ROWS, TASK_ROWS, TINY, local_config, metric_rows

import evsys_local.sdft as sdft
from evsys_local.sdft import topk_distill_loss
from evsys_sdk.builtins.verifier_fns import register, unregister
from evsys_sdk.run.runner import run_experiment

RL = {"max_steps": 3, "batch_size": 2, "num_samples": 2, "max_tokens": 6, "learning_rate": 1e-3}


def test_grpo_rewards_are_the_verifiers(tmp_path: Path) -> None:
    scored: list[float] = []

    def by_length(output: str, expected: Any, params: dict[str, Any]) -> float:
        value = len(output) / 100.0
        scored.append(value)
        return value

    register("evsys_local_test_len", by_length)
    try:
        rows = [{**r, "verifier": {**r["verifier"], "fn_name": "evsys_local_test_len"}} for r in TASK_ROWS]
        [result] = run_experiment(local_config(tmp_path, "rl", RL, rows))
    finally:
        unregister("evsys_local_test_len")
    assert result.status == "completed", result.error
    logged = [r["metrics"] for r in metric_rows(tmp_path / "contract") if "reward/mean" in r["metrics"]]
    assert len(logged) == 3 and len(scored) == 3 * 4  # 2 prompts x 2 samples per step
    for i, m in enumerate(logged):
        chunk = scored[4 * i : 4 * i + 4]
        assert m["reward/mean"] == pytest.approx(statistics.fmean(chunk))
        assert m["reward/std"] == pytest.approx(statistics.pstdev(chunk))
    assert result.metrics["reward/mean"] == pytest.approx(logged[-1]["reward/mean"])


def test_prompt_rows_use_a_registry_verifier(tmp_path: Path) -> None:
    rows = [{"prompt": f"{a}+{a}", "answer": str(2 * a)} for a in range(4)]
    [result] = run_experiment(local_config(tmp_path / "a", "rl", {**RL, "verifier_kind": "format_only"}, rows))
    assert result.status == "completed", result.error
    assert result.metrics["reward/mean"] == 0.0  # a random model never writes <think>/<answer> tags
    [missing] = run_experiment(local_config(tmp_path / "b", "rl", RL, rows))
    assert "set verifier_kind" in (missing.error or "")


def test_topk_loss_is_cross_entropy_to_renormalised_teacher() -> None:
    torch.manual_seed(0)
    teacher, student = torch.randn(2, 3, 11), torch.randn(2, 3, 11, requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, True, True]])
    loss, _ = topk_distill_loss(student, teacher, mask, topk=4)
    expected, n = 0.0, 0
    for b in range(2):
        for t in range(3):
            if mask[b, t]:
                top = teacher[b, t].topk(4)
                p = top.values.softmax(-1)
                logq = student[b, t].log_softmax(-1)[top.indices]
                expected += float(-(p * logq).sum().detach())
                n += 1
    assert float(loss) == pytest.approx(expected / n, rel=1e-5)
    # Its gradient pushes the student towards the teacher's top-K tokens only.
    loss.backward()
    assert student.grad is not None and student.grad[0, 2].abs().sum() == 0  # masked position


def test_sdft_teacher_is_the_frozen_base_with_the_golden_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bool, list[list[int]], list[list[int]], torch.Tensor]] = []
    original = sdft._SDFTLoop._logits_at_completion

    def spy(self: Any, model: Any, contexts: list[list[int]], completions: list[list[int]]) -> Any:
        out = original(self, model, contexts, completions)
        calls.append((torch.is_grad_enabled(), contexts, completions, out.detach().clone()))
        return out

    monkeypatch.setattr(sdft._SDFTLoop, "_logits_at_completion", spy)
    params = {"max_steps": 3, "batch_size": 2, "max_tokens": 5, "learning_rate": 5e-2, "skip_first_n_tokens": 1}
    [result] = run_experiment(local_config(tmp_path, "sdft", params, PROMPT_ROWS))
    assert result.status == "completed", result.error
    teacher_calls = [c for c in calls if not c[0]]
    student_calls = [c for c in calls if c[0]]
    assert len(teacher_calls) == len(student_calls) == 3

    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(TINY).eval()
    tok = AutoTokenizer.from_pretrained(TINY)
    for _, contexts, completions, logits in teacher_calls:  # every step, even after the student moved
        text = tok.decode(contexts[0])
        assert "This is an example for a response to the question" in text
        row = next(r for r in PROMPT_ROWS if r["inputs"]["question"] in text)
        assert row["expected"] in text.split("example for a response to the question:")[1]
        ids = torch.tensor([contexts[0] + completions[0]])
        with torch.no_grad():
            ref = base(input_ids=ids).logits[0, len(contexts[0]) - 1 : len(contexts[0]) - 1 + len(completions[0])]
        assert torch.allclose(logits[0, : len(completions[0])], ref, atol=1e-4)
    # The student's own prompt carries no answer.
    student_text = tok.decode(student_calls[0][1][0])
    assert "example for a response" not in student_text
    rows = [r["metrics"] for r in metric_rows(tmp_path / "contract")]
    assert {"sdft/mean_teacher_entropy", "train/mean_logprob", "sdft/num_datums"} <= set(rows[0])


def test_sdft_rejects_non_prompt_rows(tmp_path: Path) -> None:
    [result] = run_experiment(local_config(tmp_path, "sdft", {"max_steps": 1}, TASK_ROWS))
    assert result.status == "failed" and "expected 'prompt_dataset'" in (result.error or "")


def test_sdft_resume_restores_optimizer(tmp_path: Path) -> None:
    params = {"max_steps": 2, "batch_size": 2, "max_tokens": 4}
    [first] = run_experiment(local_config(tmp_path / "a", "sdft", params, PROMPT_ROWS))
    state = Path(first.artifacts["state-final"])
    [resumed] = run_experiment(
        local_config(tmp_path / "b", "sdft", {**params, "max_steps": 3}, PROMPT_ROWS, load_checkpoint_path=str(state))
    )
    assert resumed.status == "completed", resumed.error
    assert [r["step"] for r in metric_rows(tmp_path / "b" / "contract")] == [3]
    saved = torch.load(state / "optimizer.pt", weights_only=True)
    after = torch.load(Path(resumed.artifacts["state-final"]) / "optimizer.pt", weights_only=True)
    assert all(after["state"][k]["step"] == v["step"] + 1 for k, v in saved["state"].items())


def test_combo_sft_then_rl_chains_checkpoints(tmp_path: Path) -> None:
    from conftest import CHAT_ROWS

    combo = {
        "phases": [
            {"kind": "sft", "config": {"max_steps": 2}},
            {"kind": "rl", "config": {**RL, "max_steps": 1}},
        ]
    }
    rows = [{**c, **t} for c, t in zip(CHAT_ROWS, TASK_ROWS * 4, strict=False)]
    [result] = run_experiment(local_config(tmp_path, "combo", combo, rows))
    assert result.status == "completed", result.error
    import json

    manifest = json.loads((Path(result.artifacts["final_checkpoint"]) / "evsys_checkpoint.json").read_text())
    assert manifest["merged_adapters"] == [str(Path(result.artifacts["phase1_sft/final_checkpoint"]).resolve())]
