"""The Tinker algorithms on the emulator: learning, rewards, self-distillation, chaining, resume, errors."""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CHAT_ROWS, EMULATOR, MODEL, PROMPT_ROWS, TASK_ROWS

from evsys_sdk.builtins import verifier_fns
from evsys_sdk.run.runner import run_experiment
from evsys_sdk.spec.protocols import RunResult
from evsys_sdk.testing import mock_experiment_config
from evsys_tinker.testing import FakeTinker, api_error


@pytest.fixture
def fake() -> FakeTinker:
    return FakeTinker(os.environ["EVSYS_TINKER_EMULATOR_DIR"])


def run(
    tmp_path: Path,
    algorithm: str,
    params: dict[str, Any],
    rows: list[dict[str, Any]],
    *,
    fake: FakeTinker | None = None,
    model: dict[str, Any] | None = None,
    backend: str = "tinker",
    backend_params: dict[str, Any] | None = None,
    name: str = "arm",
) -> RunResult:
    config = mock_experiment_config(
        tmp_path,
        algorithm,
        params=params,
        rows=rows,
        backend=backend,
        backend_params=EMULATOR if backend_params is None else backend_params,
        model=model or MODEL,
        name=name,
    )
    [result] = run_experiment(config, extra_context={"tinker_connector": fake} if fake else None)
    return result


def metrics(tmp_path: Path, name: str = "arm") -> list[dict[str, float]]:
    lines = (tmp_path / name / "logs" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["metrics"] for line in lines if line]


def test_sft_loss_falls(tmp_path: Path) -> None:
    result = run(tmp_path, "sft", {"max_steps": 12, "batch_size": 4, "learning_rate": 1e-4}, CHAT_ROWS[:4])
    assert result.status == "completed", result.error
    losses = [m["train/loss"] for m in metrics(tmp_path)]
    assert len(losses) == 12
    # One batch holds every row, so each step sees the same data: the loss must fall at every step.
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < losses[0] - 0.3, losses
    assert result.metrics["train/final_loss"] == losses[-1]
    manifest = [json.loads(line) for line in (tmp_path / "arm" / "checkpoints.jsonl").read_text().splitlines()]
    assert [r["step"] for r in manifest] == [12] and manifest[0]["final"]


def test_sft_supervises_the_chosen_assistant_turns(fake: FakeTinker) -> None:
    from evsys_tinker import _chat

    chat = _chat.normalize(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "first"},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "second"},
        ]
    )
    tok = fake.tokenizer

    def trained(supervise: str) -> str:
        [(tokens, weights)] = _chat.supervised_examples(
            tok, chat, supervise=supervise, enable_thinking=None, max_len=4096
        )
        return str(tok.decode([t for t, w in zip(tokens, weights, strict=True) if w]))

    assert trained("all_assistant") == "first<|im_end|>\nsecond<|im_end|>\n"
    assert trained("last_assistant") == "second<|im_end|>\n"


def test_sft_checkpoints_at_fractions_and_save_every(tmp_path: Path) -> None:
    params = {"max_steps": 6, "batch_size": 2, "save_at_fractions": [0.5, 1.0], "save_every": 2}
    result = run(tmp_path, "sft", params, CHAT_ROWS)
    assert result.status == "completed", result.error
    steps = [json.loads(line)["step"] for line in (tmp_path / "arm" / "checkpoints.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 4, 6]
    assert {"checkpoint-2", "state-3", "checkpoint-final", "state-final"} <= set(result.artifacts)


@pytest.fixture
def scored() -> Iterator[list[tuple[str, float]]]:
    """A verifier fn that records what it scored: reward 1 for an even-length completion."""
    calls: list[tuple[str, float]] = []

    def parity(output: str, expected: Any, params: dict[str, Any]) -> float:
        reward = 1.0 if len(output) % 2 == 0 else 0.0
        calls.append((output, reward))
        return reward

    verifier_fns.register("test_parity", parity)
    yield calls
    verifier_fns.unregister("test_parity")


def test_rl_rewards_come_from_the_verifier(tmp_path: Path, scored: list[tuple[str, float]]) -> None:
    rows = [{**t, "verifier": {"kind": "in_process", "fn_name": "", "expected": None}} for t in TASK_ROWS]
    params = {"max_steps": 1, "batch_size": 4, "num_samples": 4, "max_tokens": 12, "verifier_name": "test_parity"}
    result = run(tmp_path, "rl", params, rows)
    assert result.status == "completed", result.error
    [step] = metrics(tmp_path)
    rewards = [r for _, r in scored]
    assert len(rewards) == 16
    assert step["reward/mean"] == pytest.approx(sum(rewards) / 16)
    mean = sum(rewards) / 16
    assert step["reward/std"] == pytest.approx(math.sqrt(sum((r - mean) ** 2 for r in rewards) / 16))
    groups = [rewards[i : i + 4] for i in range(0, 16, 4)]
    varied = [g for g in groups if max(g) != min(g)]
    assert step["reward/n_groups"] == len(varied)
    assert step["reward/n_trajectories"] == 4 * len(varied)


def test_rl_drops_groups_with_constant_reward(tmp_path: Path, fake: FakeTinker) -> None:
    params = {"max_steps": 2, "batch_size": 2, "num_samples": 3, "max_tokens": 6, "verifier_name": "exact_match"}
    rows = [{**t, "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": "never"}} for t in TASK_ROWS]
    result = run(tmp_path, "rl", params, rows, fake=fake)
    assert result.status == "completed", result.error
    for step in metrics(tmp_path):
        assert step["reward/mean"] == 0.0
        assert step["reward/n_groups"] == 0 and step["reward/n_trajectories"] == 0
    assert not [c for c in fake.calls if c[0] == "forward_backward"], "an all-dropped batch trains nothing"


def test_rl_rejects_a_task_without_a_verifier_fn(tmp_path: Path) -> None:
    rows = [{**TASK_ROWS[0], "verifier": {"kind": "in_process", "fn_name": ""}}]
    result = run(tmp_path, "rl", {"max_steps": 1}, rows)
    assert result.status == "failed"
    assert "has no verifier fn_name" in (result.error or "")


def test_sdft_trains_towards_the_teachers_top_k(tmp_path: Path, fake: FakeTinker) -> None:
    params = {"max_steps": 2, "batch_size": 2, "topk": 5, "max_tokens": 8, "skip_first_n_tokens": 1}
    result = run(tmp_path, "sdft", params, PROMPT_ROWS, fake=fake)
    assert result.status == "completed", result.error
    teacher = [c for c in fake.calls if c[0] == "sample" and c[1]["topk_prompt_logprobs"] == 5]
    assert len(teacher) == 4  # one scoring call per sampled completion
    assert ("sampling_client", {"model_path": None, "base_model": MODEL["name"]}) in fake.calls  # frozen base
    for step in metrics(tmp_path):
        assert step["sdft/topk"] == 5
        assert 0 < step["sdft/mean_teacher_entropy"] <= math.log(5) + 1e-6
        assert step["sdft/total_completion_tokens"] > 0


def test_sdft_needs_a_question(tmp_path: Path) -> None:
    result = run(tmp_path, "sdft", {"max_steps": 1}, [{"inputs": {"q": "x"}, "expected": "y"}])
    assert result.status == "failed" and "question" in (result.error or "")


def test_continual_stage_starts_from_state_final(tmp_path: Path, fake: FakeTinker) -> None:
    first = run(tmp_path, "sft", {"max_steps": 2, "batch_size": 2}, CHAT_ROWS, name="stage0")
    state = first.artifacts["state-final"]
    model = {**MODEL, "init_from_checkpoint": state}
    second = run(tmp_path, "sft", {"max_steps": 2, "batch_size": 2}, CHAT_ROWS, fake=fake, model=model, name="stage1")
    assert second.status == "completed", second.error
    assert ("training_client_from_state", {"path": state, "with_optimizer": False}) in fake.calls
    assert second.artifacts["state-final"] != state


def test_resume_restores_optimizer_state(tmp_path: Path, fake: FakeTinker) -> None:
    first = run(tmp_path, "sft", {"max_steps": 3, "batch_size": 2}, CHAT_ROWS, name="first")
    model = {**MODEL, "load_checkpoint_path": first.artifacts["state-final"]}
    resumed = run(tmp_path, "sft", {"max_steps": 2, "batch_size": 2}, CHAT_ROWS, fake=fake, model=model, name="again")
    assert resumed.status == "completed", resumed.error
    state = first.artifacts["state-final"]
    assert ("training_client_from_state", {"path": state, "with_optimizer": True}) in fake.calls
    # Adam's step count continues from the saved state: 3 steps, then 2 more.
    run_id, checkpoint = resumed.artifacts["state-final"].removeprefix("tinker://").split("/", 1)
    meta = json.loads((fake.root / run_id / checkpoint / "meta.json").read_text())
    assert meta["adam_t"] == 5


def test_a_4xx_from_the_service_fails_the_run_with_its_message(tmp_path: Path, fake: FakeTinker) -> None:
    fake.fail_next("forward_backward", api_error(400, "sequence longer than the model's context window"))
    result = run(tmp_path, "sft", {"max_steps": 2}, CHAT_ROWS, fake=fake)
    assert result.status == "failed"
    assert "HTTP 400" in (result.error or "") and "longer than the model's context window" in (result.error or "")


def test_missing_api_key_names_the_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_TINKER_KEY", raising=False)
    result = run(tmp_path, "sft", {"max_steps": 1}, CHAT_ROWS, backend_params={"api_key_env": "MY_TINKER_KEY"})
    assert result.status == "failed"
    assert "MY_TINKER_KEY" in (result.error or "") and "EvsysError" in (result.error or "")


def test_tinker_algorithm_on_another_backend_says_so(tmp_path: Path) -> None:
    result = run(tmp_path, "tinker_sft", {"max_steps": 1}, CHAT_ROWS, backend="mock", backend_params={})
    assert result.status == "failed"
    assert "requires backend=tinker (got 'mock')" in (result.error or "")
