"""``run.max_seconds``: a schema-valid but endless arm stops, failed, with its partial metrics, whether the
algorithm checks its budget (every built-in does) or hangs and is killed by the process executor."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk.base.budget import TimeBudget, TimeBudgetExceeded
from evsys_sdk.base.errors import ConfigError
from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.plugins.host import PluginHost
from evsys_sdk.run.runner import config_fingerprint, run_experiment
from evsys_sdk.testing import executors as kit
from evsys_sdk.tracking.store import LocalStore

ENDLESS = {"num_epochs": 10**38, "step_seconds": 0.01}  # 3 steps per epoch: 3e38 steps


@pytest.fixture
def host(plugin_host: PluginHost) -> PluginHost:
    return kit.add_executor_test_plugin(plugin_host)


def budget_run(name: str, seconds: float, algorithm: str = "sft", **params: Any) -> dict[str, Any]:
    return {**kit.mock_run(name, algorithm, **{**ENDLESS, **params}), "max_seconds": seconds}


def test_budget_raises_once_spent() -> None:
    budget = TimeBudget(0.05)
    budget.check()
    assert 0 < budget.left() <= 0.05
    time.sleep(0.06)
    with pytest.raises(TimeBudgetExceeded, match=r"^time budget exceeded after 0.05 s$"):
        budget.check()
    assert not issubclass(TimeBudgetExceeded, Exception)  # an algorithm's `except Exception` cannot eat it


@pytest.mark.timeout(60)
def test_an_endless_mock_arm_stops_failed_with_its_partial_metrics(tmp_path: Path) -> None:
    cfg = {"name": "exp", "output_dir": str(tmp_path / "out"), "run": budget_run("endless", 0.3)}
    started = time.monotonic()
    [result] = run_experiment(cfg)
    assert time.monotonic() - started < 20
    assert (result.status, result.error) == ("failed", "time budget exceeded after 0.3 s")
    assert 0 < result.metrics["train/loss"] < 2.1  # the last loss it logged
    record = json.loads((tmp_path / "out" / "endless" / "run_result.json").read_text())
    assert record["status"] == "failed" and record["metrics"] == result.metrics


@pytest.mark.timeout(60)
def test_sequential_experiment_records_the_stopped_arm_and_goes_on(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "db.sqlite")
    runs = [budget_run("endless", 0.3), kit.mock_run("fine")]
    cfg = load_yaml({"name": "exp", "output_dir": str(tmp_path / "out"), "runs": runs})
    result = Experiment(cfg, store=store).run()
    stopped, fine = result.arms
    assert (stopped.status, stopped.error, fine.status) == ("failed", "time budget exceeded after 0.3 s", "completed")
    assert "train/loss" in stopped.metrics
    [recorded] = [r for r in store.experiment_runs(store.list_experiments()[0]["id"]) if r["name"] == "endless"]
    assert recorded["status"] == "failed" and recorded["metrics"] == stopped.metrics
    assert len(store.step_metrics(recorded["id"])) >= 3  # its curve up to the stop


@pytest.mark.timeout(60)
def test_a_combo_phase_over_budget_stops_the_whole_run(tmp_path: Path) -> None:
    phases = [{"kind": "sft", "config": {"max_steps": 2}}, {"kind": "sft", "config": ENDLESS}]
    run = {**kit.mock_run("chain", "combo", phases=phases), "max_seconds": 0.3}
    [result] = run_experiment({"name": "exp", "output_dir": str(tmp_path / "out"), "run": run})
    assert (result.status, result.error) == ("failed", "time budget exceeded after 0.3 s")


@pytest.mark.timeout(120)
def test_process_executor_kills_an_arm_that_ignores_its_budget(tmp_path: Path, host: PluginHost) -> None:
    store = LocalStore(tmp_path / "db.sqlite")
    # The stall gets 3 s to log its step before the kill (a loaded 2-core machine can take over 1 s to get there).
    runs = [kit.stall_run("stuck", 3.0), budget_run("checks", 0.5), kit.mock_run("fine")]
    executor = kit.executor_config("process", max_workers=3, kill_grace_seconds=0.5)
    cfg = load_yaml(kit.executor_experiment(tmp_path / "out", executor, runs=runs))
    started = time.monotonic()
    result = Experiment(cfg, store=store).run()
    assert time.monotonic() - started < 60  # the stall would sleep 600 s
    assert [(a.name, a.status, a.error) for a in result.arms] == [
        ("stuck", "failed", "time budget exceeded after 3 s"),
        ("checks", "failed", "time budget exceeded after 0.5 s"),
        ("fine", "completed", None),
    ]
    assert result.arms[0].metrics == {"train/loss": 1.5}  # what it logged before it hung
    runs_by_name = {r["name"]: r for r in store.experiment_runs(store.list_experiments()[0]["id"])}
    stuck = runs_by_name["stuck"]
    assert (stuck["status"], stuck["error_message"]) == ("failed", "time budget exceeded after 3 s")
    assert [(r["step"], r["metrics"]) for r in store.step_metrics(stuck["id"])] == [(1, {"train/loss": 1.5})]


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), "soon"])
def test_max_seconds_must_be_a_positive_finite_number(tmp_path: Path, value: Any) -> None:
    cfg = {"name": "exp", "output_dir": str(tmp_path), "run": {**kit.mock_run("a"), "max_seconds": value}}
    with pytest.raises(ConfigError, match="max_seconds"):
        load_yaml(cfg)


def test_the_budget_leaves_the_resume_fingerprint_alone(tmp_path: Path) -> None:
    base = {"name": "exp", "output_dir": str(tmp_path)}
    plain = load_yaml({**base, "run": kit.mock_run("a")}).run
    bounded = load_yaml({**base, "run": {**kit.mock_run("a"), "max_seconds": 30}}).run
    assert plain is not None and bounded is not None and bounded.max_seconds == 30
    assert config_fingerprint(plain) == config_fingerprint(bounded)
