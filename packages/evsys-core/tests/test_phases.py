"""One timeline per arm: combo phases log a global, monotonic step with the phase recorded on each row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.spec.phases import PHASE_KEY, phase_starts
from evsys_sdk.tracking.store import LocalStore

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bench"
    folder.mkdir()
    task = {
        "task_id": "q",
        "instruction": "q",
        "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": "a"},
    }
    (folder / "tasks.jsonl").write_text(json.dumps(task) + "\n")
    return folder


def _combo_config(tmp_path: Path, mock_run: Any, **meta: Any) -> ExperimentConfig:
    phases = [
        {"kind": "sft", "config": {"max_steps": 3}},
        {"kind": "mock_rl", "config": {"num_steps": 4, "save_every": 2}, "name": "rl"},
    ]
    run = mock_run("chain", algorithm="combo", params={"phases": phases})
    return ExperimentConfig.model_validate(
        {"name": "combo_exp", "output_dir": str(tmp_path / "out"), "run": run, "metadata": meta}
    )


def test_combo_logs_one_global_timeline(tmp_path: Path, mock_run: Any) -> None:
    store = LocalStore(tmp_path / "evsys.db")
    result = Experiment(_combo_config(tmp_path, mock_run), store=store).run()
    assert result.arms[0].status == "completed"
    (run,) = store.experiment_runs(result.experiment_id or "")
    rows = store.step_metrics(run["id"], "train")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["metrics"][PHASE_KEY] for r in rows] == [1, 1, 1, 2, 2, 2, 2]
    assert "train/loss" in rows[2]["metrics"] and "train/reward" in rows[3]["metrics"]
    assert phase_starts((r["step"], r["metrics"]) for r in rows) == [(4, 2)]


def test_in_loop_validation_sees_the_global_step(tmp_path: Path, mock_run: Any, bench_dir: Path) -> None:
    meta = {"benchmark": [{"name": "val", "path": str(bench_dir), "run_every": 2}]}
    store = LocalStore(tmp_path / "evsys.db")
    result = Experiment(_combo_config(tmp_path, mock_run, **meta), store=store).run()
    live = [e.step for e in result.arms[0].evals if e.step is not None]
    assert live == [2, 4, 6]  # phase 1: step 2; phase 2: its steps 1 and 3 are global 4 and 6
    (run,) = store.experiment_runs(result.experiment_id or "")
    val = store.step_metrics(run["id"], "val")
    assert [r["step"] for r in val] == [2, 4, 6] and all(PHASE_KEY not in r["metrics"] for r in val)


def test_phase_starts_reads_rows_in_step_order() -> None:
    rows = [(3, {PHASE_KEY: 2}), (1, {PHASE_KEY: 1}), (2, {PHASE_KEY: 1}), (5, {PHASE_KEY: 3}), (4, {"x": 1.0})]
    assert phase_starts(rows) == [(3, 2), (5, 3)]
    assert phase_starts([(1, {"loss": 1.0})]) == []


@pytest.mark.plot
def test_runs_plot_draws_one_curve_per_combo_arm(tmp_path: Path, mock_run: Any) -> None:
    from evsys_sdk.cli.plots import plot_metric

    store = LocalStore(tmp_path / "evsys.db")
    Experiment(_combo_config(tmp_path, mock_run), store=store).run()
    exp = store.find_experiment("combo_exp")
    assert exp is not None
    png = plot_metric(store, exp, "train/loss", tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seeded_repeats_reach_every_combo_phase(tmp_path: Path, mock_run: Any) -> None:
    cfg = _combo_config(tmp_path, mock_run).model_copy(update={"n_repeats": 2})
    a, b = Experiment(cfg).run().arms
    assert a.metrics["rl/train/final_reward"] != b.metrics["rl/train/final_reward"]  # seeds 42 and 43
    assert a.metrics["phase1_sft/train/final_loss"] != b.metrics["phase1_sft/train/final_loss"]
