"""gepa_prompt on the real gepa.optimize with the deterministic toy LMs: strict improvement, what is
saved, how rows are scored, budgets, failures, resume and chaining."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import TOY, prompt_rows

from evsys_gepa.inference import read_prompt
from evsys_gepa.testing import LESSON_ONLY, LESSON_TAGS, toy_tasks
from evsys_sdk.base.errors import ConfigError
from evsys_sdk.run.runner import run_experiment
from evsys_sdk.spec.protocols import RunResult
from evsys_sdk.testing import mock_experiment_config

SEED = "You are a helpful assistant. Answer concisely."


def run(tmp_path: Path, params: dict[str, Any], rows: list[dict[str, Any]], **extra: Any) -> tuple[RunResult, Path]:
    config = mock_experiment_config(tmp_path, algorithm="gepa_prompt", params=params, rows=rows)
    [result] = run_experiment(config, extra_context=extra or None)
    return result, tmp_path / "contract"


def metric_rows(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "logs" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


def test_best_score_strictly_improves_and_the_saved_prompt_is_the_best_candidate(tmp_path: Path) -> None:
    result, run_dir = run(tmp_path, {**TOY, "max_iterations": 10}, prompt_rows())
    assert result.status == "completed", result.error
    assert result.metrics["gepa/seed_score"] == 0.0
    assert result.metrics["gepa/best_score"] == 1.0 > result.metrics["gepa/seed_score"]
    tree = json.loads((run_dir / "candidates.json").read_text(encoding="utf-8"))
    scores = [c["val_score"] for c in tree["candidates"]]
    assert scores == [0.0, 0.5, 1.0]  # every accepted proposal is strictly better than its parent
    assert [c["parents"] for c in tree["candidates"]] == [[], [0], [1]]
    best = tree["candidates"][tree["best_idx"]]
    assert best["val_score"] == max(scores)
    saved = read_prompt(result.artifacts["final_prompt"])
    assert saved == best["system_prompt"] == f"{SEED}\n{LESSON_TAGS}\n{LESSON_ONLY}"
    assert result.extras["best_prompt"] == saved
    assert json.loads((run_dir / "prompts.json").read_text(encoding="utf-8"))["system_prompt"] == saved
    # the gepa/* series: the seed at step 0, then one row per iteration; best_score never decreases
    rows = metric_rows(run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2]
    best_series = [r["metrics"]["gepa/best_score"] for r in rows]
    assert best_series == [0.0, 0.5, 1.0]
    assert all(r["metrics"]["gepa/metric_calls"] >= 0 for r in rows)
    assert rows[-1]["metrics"]["gepa/metric_calls"] == result.metrics["gepa/metric_calls"] == 36.0
    assert result.metrics["gepa/iterations"] == 2.0  # stopped at the perfect score


def test_artifacts_follow_the_checkpoint_conventions(tmp_path: Path) -> None:
    result, run_dir = run(tmp_path, {**TOY, "max_iterations": 2}, prompt_rows(4))
    arts = result.artifacts
    assert arts["final_checkpoint"] == arts["final_prompt"] == str(run_dir / "prompts.json")
    assert Path(arts["state-final"], "gepa_state.bin").is_file()  # GEPA's resumable state
    assert read_prompt(arts["state-final"]) == read_prompt(arts["final_prompt"])
    assert (run_dir / "candidate_tree.dot").read_text(encoding="utf-8").startswith("digraph")
    logged = json.loads((run_dir / "logs" / "artifacts.json").read_text(encoding="utf-8"))
    assert {(a["name"], a["kind"]) for a in logged} >= {("final_prompt", "prompt"), ("final_checkpoint", "checkpoint")}
    assert json.loads((run_dir / "run_result.json").read_text(encoding="utf-8"))["status"] == "completed"


def test_reflective_records_carry_inputs_outputs_expected_and_feedback() -> None:
    from evsys_gepa.adapter import EvsysAdapter
    from evsys_gepa.tasks import load_examples, make_scorer

    adapter = EvsysAdapter(task_lm="gepa_toy", task_lm_config={}, scorer=make_scorer())
    batch = load_examples(prompt_rows(2))
    evaluated = adapter.evaluate(batch, {"system_prompt": "Use <answer> tags."}, capture_traces=True)
    assert evaluated.scores == [0.5, 0.5]
    assert evaluated.outputs[0]["completion"] == "Let me think. The answer is <answer>5</answer>."
    records = adapter.make_reflective_dataset({"system_prompt": "x"}, evaluated, ["system_prompt"])["system_prompt"]
    assert records[0] == {
        "Inputs": "question: What is 1 + 4?",
        "Generated Outputs": "Let me think. The answer is <answer>5</answer>.",
        "Expected": "<answer>5</answer>",
        "Feedback": "Score 0.50. Expected answer: <answer>5</answer>. "
        "The response contains the expected answer but is not exactly it.",
    }
    untraced = adapter.evaluate(batch, {"system_prompt": ""}, capture_traces=False)
    assert untraced.trajectories is None and len(untraced.outputs) == len(untraced.scores) == 2


def test_harbor_tasks_are_scored_by_their_verifiers(tmp_path: Path) -> None:
    result, _ = run(tmp_path, {**TOY, "max_iterations": 5}, toy_tasks(6))
    assert result.status == "completed", result.error
    assert (result.metrics["gepa/seed_score"], result.metrics["gepa/best_score"]) == (0.0, 1.0)


def test_score_fn_names_a_verifier_fn(tmp_path: Path) -> None:
    """With ``contains`` the tags lesson alone is perfect: one accepted proposal."""
    result, run_dir = run(tmp_path, {**TOY, "score_fn": "contains", "max_iterations": 5}, prompt_rows(4))
    assert result.metrics["gepa/best_score"] == 1.0
    assert read_prompt(run_dir) == f"{SEED}\n{LESSON_TAGS}"


def test_metric_scores_the_answer_inside_tags(tmp_path: Path) -> None:
    rows = [{"inputs": {"q": f"{i} + 1"}, "expected": str(i + 1)} for i in range(4)]
    result, run_dir = run(tmp_path, {**TOY, "metric": "exact_match", "max_iterations": 5}, rows)
    assert result.metrics["gepa/seed_score"] == 0.0  # "Let me think. The answer is 1." is not "1"
    assert result.metrics["gepa/best_score"] == 1.0
    assert LESSON_ONLY in read_prompt(run_dir)


def test_prompt_score_fn_and_prompt_examples_from_the_context(tmp_path: Path) -> None:
    calls: list[tuple[str, Any]] = []

    def score(completion: str, expected: Any) -> float:
        calls.append((completion, expected))
        return 1.0 if completion == f"<answer>{expected}</answer>" else 0.0

    examples = [{"inputs": {"q": f"{i} * 3"}, "expected": str(3 * i)} for i in range(1, 4)]
    result, _ = run(
        tmp_path,
        {**TOY, "max_iterations": 0},
        prompt_rows(2),
        prompt_examples=examples,
        prompt_score_fn=score,
    )
    assert result.status == "completed", result.error
    assert [e for _, e in calls] == ["3", "6", "9"]  # the context's examples, not the run's rows
    assert result.metrics["gepa/iterations"] == 0.0


def test_no_examples_is_a_config_error_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run\.data: the training set is empty: training needs a row"):
        run(tmp_path, TOY, [])
    assert not (tmp_path / "contract").exists()


def test_max_metric_calls_is_a_budget(tmp_path: Path) -> None:
    params = {**TOY, "max_metric_calls": 10, "max_iterations": 50, "stop_at_perfect": False}
    result, _ = run(tmp_path, params, prompt_rows())
    assert result.status == "completed", result.error
    assert 10 <= result.metrics["gepa/metric_calls"] <= 10 + 3 + 3 + 8  # checked between iterations
    assert result.metrics["gepa/iterations"] == 1.0


def test_failed_generations_score_zero_and_never_fail_the_run(tmp_path: Path) -> None:
    from evsys_sdk.plugins.registry import register_inference

    class Flaky:
        name = "gepa_test_flaky"

        def __init__(self, **params: Any) -> None:
            self.n = 0

        def generate(self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: Any = None) -> str:
            raise ValueError("model is down")

    from evsys_sdk.plugins.host import PluginHost, use_host

    with use_host(PluginHost()):
        register_inference()(Flaky)
        params = {"task_lm": "gepa_test_flaky", "reflection_lm": "gepa_toy_reflector", "max_iterations": 1}
        result, run_dir = run(tmp_path, params, prompt_rows(3))
    assert result.status == "completed", result.error
    assert result.metrics["gepa/best_score"] == 0.0
    assert result.metrics["gepa/generation_failures"] >= 3
    tree = json.loads((run_dir / "candidates.json").read_text(encoding="utf-8"))
    assert tree["candidates"][0]["system_prompt"] == SEED


def test_native_mode_needs_a_system_prompt_param(tmp_path: Path) -> None:
    result, _ = run(tmp_path, {**TOY, "system_prompt_mode": "native"}, prompt_rows(2))
    assert result.status == "failed"
    assert "system_prompt_mode" in (result.error or "")


def test_a_rerun_resumes_only_the_same_config(tmp_path: Path) -> None:
    first, run_dir = run(tmp_path, {**TOY, "max_iterations": 1}, prompt_rows(4))
    assert first.metrics["gepa/n_candidates"] == 2.0
    log = run_dir / "gepa" / "run_log.txt"
    assert "Loading gepa state" not in log.read_text(encoding="utf-8")
    resumed, _ = run(tmp_path, {**TOY, "max_iterations": 1}, prompt_rows(4))  # same config: state reloaded
    assert "Loading gepa state" in log.read_text(encoding="utf-8")
    assert resumed.metrics["gepa/n_candidates"] == 2.0
    more, _ = run(tmp_path, {**TOY, "max_iterations": 1, "seed_prompt": "Be brief."}, prompt_rows(4))
    tree = json.loads((run_dir / "candidates.json").read_text(encoding="utf-8"))
    assert tree["candidates"][0]["system_prompt"] == "Be brief."  # another config started afresh
    assert more.metrics["gepa/n_candidates"] == 2.0
    assert "Loading gepa state" not in log.read_text(encoding="utf-8")


def test_a_chain_starts_from_the_previous_prompt(tmp_path: Path) -> None:
    phases = [
        {"kind": "gepa_prompt", "name": "first", "config": {**TOY, "max_iterations": 1}},
        {"kind": "gepa_prompt", "name": "second", "config": {**TOY, "max_iterations": 1}},
    ]
    config = mock_experiment_config(tmp_path, algorithm="combo", params={"phases": phases}, rows=prompt_rows(4))
    [result] = run_experiment(config)
    assert result.status == "completed", result.error
    second = json.loads((tmp_path / "contract" / "second" / "prompts.json").read_text(encoding="utf-8"))
    assert second["seed_prompt"] == f"{SEED}\n{LESSON_TAGS}"
    assert second["system_prompt"] == f"{SEED}\n{LESSON_TAGS}\n{LESSON_ONLY}"


def test_config_is_strict() -> None:
    from pydantic import ValidationError

    from evsys_gepa.algorithm import GEPAPromptAlgorithm

    with pytest.raises(ValidationError):
        GEPAPromptAlgorithm(max_iteration=3)
    with pytest.raises(ValidationError, match="score_fn or metric"):
        GEPAPromptAlgorithm(score_fn="contains", metric="exact_match")
