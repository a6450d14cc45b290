from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.builtins.mock import read_checkpoint
from evsys_sdk.run.progress import Progress
from evsys_sdk.run.runner import config_fingerprint, run_experiment


def _record(out: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / name / "run_result.json").read_text())
    return data


def test_mock_sft_lifecycle(tmp_path: Path, experiment: Any, mock_run: Any) -> None:
    rows = [{"q": i} for i in range(3)]
    cfg = experiment(run=mock_run("r/0", rows=rows, params={"batch_size": 1, "save_at_fractions": [0.5, 1.0]}))
    (result,) = run_experiment(cfg)
    out = tmp_path / "out"
    assert result.run_id == "r_0" and result.status == "completed"
    assert result.metrics["total_steps"] == 3.0
    assert set(result.artifacts) == {"ckpt_step_2", "ckpt_step_3", "final_checkpoint", "state-final"}
    assert read_checkpoint(result.artifacts["final_checkpoint"])["step"] == 3
    record = _record(out, "r_0")
    assert record["status"] == "completed" and record["error"] is None
    assert record["hparams"]["name"] == "r/0" and record["config_fingerprint"] == config_fingerprint(
        __import__("evsys_sdk").load_yaml(cfg).run
    )
    assert set(record) >= {"run_id", "status", "metrics", "artifacts", "error", "hparams", "ts"}
    lines = (out / "r_0" / "logs" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    hp = json.loads((out / "r_0" / "logs" / "hyperparams.json").read_text())
    assert hp["experiment_name"] == "exp" and hp["algorithm"] == "mock_sft" and hp["run_name"] == "r/0"
    assert not list((out / "r_0").rglob("*.tmp"))


def test_loss_curve_is_the_reference_formula(experiment: Any, mock_run: Any) -> None:
    from evsys_sdk.builtins.mock_landscape import landscape

    params = {"max_steps": 10, "lora_rank": 16, "learning_rate": 3e-4, "seed": 7}
    (result,) = run_experiment(experiment(run=mock_run(params=params)))
    skill = landscape({"lora_rank": 16, "learning_rate": 3e-4, "num_epochs": 1}, 7)
    assert result.metrics["train/final_loss"] == pytest.approx(0.05 + 1.95 * (1 - skill))


def test_rerun_starts_logs_fresh(tmp_path: Path, experiment: Any) -> None:
    cfg = experiment()
    run_experiment(cfg)
    run_experiment(cfg)
    lines = (tmp_path / "out" / "r0" / "logs" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4  # 4 rows, batch 1, one epoch; not 8


@pytest.mark.parametrize(
    "run_override,error",
    [
        ({"backend": {"kind": "mock", "params": {"fail_on_prepare": True}}}, "RuntimeError: MockBackend asked to fail"),
        ({"data": {"dataset_id": "no-such-dataset"}}, "no-such-dataset"),
        (
            {"algorithm": {"kind": "mock_rl", "params": {"verifier_kind": "nope", "num_steps": 2}}},
            "No verifier registered under 'nope'",
        ),
    ],
)
def test_runtime_failures_become_failed_results(
    tmp_path: Path, experiment: Any, mock_run: Any, run_override: dict[str, Any], error: str
) -> None:
    run = {**mock_run("bad"), **run_override}
    results = run_experiment(experiment(runs=[run, mock_run("good")]))
    assert [r.status for r in results] == ["failed", "completed"]
    assert error in (results[0].error or "")
    record = _record(tmp_path / "out", "bad")
    assert record["status"] == "failed" and error in record["error"] and "Traceback" in record["traceback"]


def test_config_errors_raise_before_any_run(tmp_path: Path, experiment: Any, mock_run: Any) -> None:
    bad = mock_run("b", algorithm="mock_sft", params={"learnin_rate": 1})
    with pytest.raises(ConfigError, match="learnin_rate: unknown field; did you mean 'learning_rate'"):
        run_experiment(experiment(runs=[mock_run("a"), bad]))
    assert not (tmp_path / "out" / "a").exists()
    for data, error in (
        ({"source_kind": "jsonl", "path": "missing.jsonl"}, r"runs\[1\]\.data\.path: data file not found: .*missing"),
        (
            {"source_kind": "in_memory", "rows": [{"a": 1}], "transforms": [{"kind": "jsonl_to_chat"}]},
            r"runs\[1\]\.data\.transforms: MissingFieldError: jsonl_to_chat: row 0 has no field 'query'",
        ),
        ({"source_kind": "in_memory", "rows": []}, r"runs\[1\]\.data: the training set is empty: training needs a row"),
    ):
        with pytest.raises(ConfigError, match=error):
            run_experiment(experiment(runs=[mock_run("a"), {**mock_run("b"), "data": data}]))
        assert not (tmp_path / "out" / "a").exists()
    with pytest.raises(ConfigError, match="experiment layer"):
        run_experiment(experiment(n_repeats=2))
    with pytest.raises(ConfigError, match="experiment layer"):
        run_experiment(experiment(callbacks=[{"kind": "wandb"}]))


def test_family_kinds_run_on_mock(experiment: Any, mock_run: Any) -> None:
    runs = [
        mock_run("s", algorithm="sft"),
        mock_run("d", algorithm="sdft", params={"topk": 5, "batch_size": 2}),
        mock_run("r", algorithm="rl", params={"max_steps": 3, "num_samples": 2}),
    ]
    results = run_experiment(experiment(runs=runs))
    assert [r.status for r in results] == ["completed"] * 3
    assert results[2].metrics["verifier/probe_reward"] == 1.0
    from evsys_sdk.builtins.mock_landscape import landscape

    skill = landscape({"learning_rate": 5e-5, "lora_rank": 4, "num_epochs": 1}, 42)  # MockRLConfig's defaults
    assert results[2].metrics["train/final_reward"] == pytest.approx(0.1 + 0.8 * skill)


def test_combo_chains_checkpoints_and_reports_failures(tmp_path: Path, experiment: Any, mock_run: Any) -> None:
    phases = [
        {"kind": "sft", "config": {"max_steps": 2}},
        {"kind": "mock_rl", "config": {"num_steps": 2}, "name": "rl"},
    ]
    (result,) = run_experiment(experiment(run=mock_run("c", algorithm="combo", params={"phases": phases})))
    assert result.status == "completed"
    assert "phase1_sft/train/final_loss" in result.metrics and "rl/train/final_reward" in result.metrics
    assert (
        read_checkpoint(result.artifacts["rl/final_checkpoint"])["init_from"]
        == result.artifacts["phase1_sft/final_checkpoint"]
    )
    assert result.artifacts["final_checkpoint"] == result.artifacts["rl/final_checkpoint"]
    bad = [{"kind": "nope"}, {"kind": "mock_sft", "config": {"max_steps": 1}}]
    (failed,) = run_experiment(
        experiment(run=mock_run("c2", algorithm="combo", params={"phases": bad, "fail_fast": False}))
    )
    assert failed.status == "failed" and "phase phase1_nope could not be constructed" in (failed.error or "")
    assert "phase2_mock_sft/final_checkpoint" in failed.artifacts  # later phases still ran
    assert not (tmp_path / "out" / "c2" / "phase1_nope").exists()


def test_runner_eval_scores_with_metrics(tmp_path: Path, experiment: Any, mock_run: Any) -> None:
    rows = [{"prompt": "p1", "answer": "A"}, {"prompt": "p2", "answer": "B"}, {"prompt": "p3", "answer": "A"}]
    run = mock_run(
        "e",
        rows=rows,
        eval={
            "inference": {"kind": "mock", "params": {"template": "<answer>A</answer>"}},
            "metrics": [{"kind": "exact_match"}, {"kind": "mean_reward"}, {"kind": "pass_rate"}],
            "n_samples": 2,
        },
    )
    (result,) = run_experiment(experiment(run=run))
    assert result.metrics["eval/exact_match"] == 0.5
    assert result.metrics["eval/mean_reward"] == 0.5 and result.metrics["eval/pass_rate"] == 0.5


def test_harbor_rows_are_scored_by_their_verifier(experiment: Any, mock_run: Any) -> None:
    rows = [
        {
            "task_id": "t1",
            "instruction": "say hi",
            "verifier": {"kind": "in_process", "fn_name": "contains", "expected": "MOCK"},
        }
    ]
    run = mock_run("h", rows=rows, eval={"inference": {"kind": "mock"}, "metrics": [{"kind": "pass_rate"}]})
    (result,) = run_experiment(experiment(run=run))
    assert result.metrics["eval/pass_rate"] == 1.0


def test_keyboard_interrupt_marks_the_run_cancelled(
    tmp_path: Path, experiment: Any, mock_run: Any, monkeypatch: Any
) -> None:
    from evsys_sdk.builtins import mock

    def interrupt(self: Any, step: int, total: int) -> dict[str, float]:
        raise KeyboardInterrupt

    monkeypatch.setattr(mock.MockSFT, "_step_metrics", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(experiment(runs=[mock_run("a"), mock_run("b")]))
    assert _record(tmp_path / "out", "a")["status"] == "cancelled"
    assert not (tmp_path / "out" / "b").exists()


def test_jsonl_source_and_multiplex_logs(tmp_path: Path, experiment: Any, mock_run: Any) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text('{"q": 1}\n\n{"q": 2}\n')
    run = {**mock_run("j"), "data": {"source_kind": "jsonl", "path": str(data)}}
    log_store = {"kind": "multiplex", "params": {"children": [{"kind": "jsonl"}, {"kind": "null"}]}}
    (result,) = run_experiment(experiment(run=run, log_store=log_store))
    assert result.status == "completed" and result.metrics["total_steps"] == 2.0
    assert (tmp_path / "out" / "j" / "logs" / "jsonl" / "metrics.jsonl").exists()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_and_quiet_when_piped(experiment: Any, mock_run: Any) -> None:
    tty = _Tty()
    run_experiment(experiment(runs=[mock_run("a"), mock_run("b")]), progress=Progress(2, tty, interval=0))
    screen = tty.getvalue()
    assert "[0/2] a: starting" in screen and "[1/2] b: starting" in screen and "[2/2] b: completed" in screen
    assert "step 1" in screen and screen.endswith("\n")
    piped = io.StringIO()
    run_experiment(experiment(runs=[mock_run("c")]), progress=Progress(1, piped))
    assert piped.getvalue() == ""


def test_runner_eval_without_inference_scores_the_trained_checkpoint(experiment: Any, mock_run: Any) -> None:
    rows = [{"prompt": f"p{i}", "answer": f"a{i}"} for i in range(6)]
    run = mock_run(
        "t", rows=rows, params={"lora_rank": 64, "num_epochs": 3}, eval={"metrics": [{"kind": "exact_match"}]}
    )
    (result,) = run_experiment(experiment(run=run))
    # the mock model recalls what it trained on; the template-only client would score 0
    assert result.metrics["eval/exact_match"] > 0
