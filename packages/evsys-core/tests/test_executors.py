"""Executors: the ``process`` executor gives the same experiment as ``sequential`` (arms, groups, chains,
evals, store records, callback events), a crashing arm fails alone, Ctrl-C cancels, resume continues."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk import validate_yaml
from evsys_sdk.base.errors import ConfigError
from evsys_sdk.cli.main import main
from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.executors import ProcessExecutor, SequentialExecutor
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.plugins.host import PluginHost
from evsys_sdk.testing import executors as kit  # the executor test kit: test algorithms, configs, comparisons
from evsys_sdk.tracking.store import LocalStore


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    return kit.write_qa_benchmark(tmp_path / "bench")


@pytest.fixture
def host(plugin_host: PluginHost) -> PluginHost:
    """The driver knows the test algorithms; workers load them through ``executor.params.plugins``."""
    return kit.add_executor_test_plugin(plugin_host)


def process(**params: Any) -> dict[str, Any]:
    return kit.executor_config("process", **params)


def two_arms(out: Path, executor: dict[str, Any]) -> dict[str, Any]:
    return kit.executor_experiment(out, executor, runs=[kit.mock_run("a"), kit.mock_run("b")])


def test_process_sweep_matches_sequential(tmp_path: Path, bench_dir: Path, host: PluginHost) -> None:
    meta = {"benchmark": [{"name": "qa", "path": str(bench_dir)}], "success_metric": "qa.pass_rate"}
    runs = [kit.mock_run("a", lora_rank=2), kit.mock_run("b", lora_rank=8), kit.mock_run("c", num_epochs=1)]
    (seq, seq_out, seq_store), (proc, proc_out, proc_store) = kit.run_beside_sequential(
        tmp_path, process(max_workers=2), runs=runs, n_repeats=2, metadata=meta
    )
    assert [a.name for a in proc.arms] == ["a__s42", "a__s43", "b__s42", "b__s43", "c__s42", "c__s43"]
    assert kit.comparable_arms(proc, proc_out) == kit.comparable_arms(seq, seq_out)
    assert all(a.status == "completed" and a.eval("qa") is not None for a in proc.arms)
    assert (proc.best_arm and proc.best_arm.name) == (seq.best_arm and seq.best_arm.name)
    assert proc.conclusion == seq.conclusion and proc.group_stats() == seq.group_stats()
    assert kit.recorded_runs(proc_store) == kit.recorded_runs(seq_store)
    # Every arm's events arrive together and in the sequential order of events within an arm.
    per_arm = {arm.name: [e for e, a in kit.callback_events(proc_out) if a == arm.name] for arm in proc.arms}
    assert per_arm == {arm.name: [e for e, a in kit.callback_events(seq_out) if a == arm.name] for arm in seq.arms}
    assert {e for e, _ in kit.callback_events(proc_out)} == {e for e, _ in kit.callback_events(seq_out)}


def test_continual_chains_stay_ordered_and_match_sequential(tmp_path: Path, bench_dir: Path, host: PluginHost) -> None:
    fields = kit.continual_fields(bench_dir)
    (seq, seq_out, seq_store), (proc, proc_out, proc_store) = kit.run_beside_sequential(
        tmp_path, process(max_workers=2), **fields
    )
    assert [(a.name, a.stage, a.group_name) for a in proc.arms] == [
        ("cl_stage0__s42", 0, "cl_stage0"),
        ("cl_stage1__s42", 1, "cl_stage1"),
        ("cl_stage0__s43", 0, "cl_stage0"),
        ("cl_stage1__s43", 1, "cl_stage1"),
    ]
    assert kit.comparable_arms(proc, proc_out) == kit.comparable_arms(seq, seq_out)
    # Each second stage started from its own chain's first-stage state.
    for first, second in ((0, 1), (2, 3)):
        state = proc.arms[first].run_result.artifacts["state-final"]  # type: ignore[union-attr]
        assert proc.arms[second].run_config.model.init_from_checkpoint == state
    assert proc.stage_matrix() == seq.stage_matrix()
    assert kit.recorded_runs(proc_store) == kit.recorded_runs(seq_store)


@pytest.mark.parametrize(("how", "reason"), [("kill", "killed by SIGKILL"), ("exit", "exit code 3")])
def test_an_arm_that_kills_its_process_fails_alone(tmp_path: Path, host: PluginHost, how: str, reason: str) -> None:
    runs = [kit.mock_run("a"), kit.crash_run("dies", how=how), kit.mock_run("b"), kit.mock_run("c")]
    store = LocalStore(tmp_path / "db.sqlite")
    cfg = load_yaml(kit.executor_experiment(tmp_path / "out", process(max_workers=2), runs=runs))
    result = Experiment(cfg, store=store).run()
    assert [(a.name, a.status) for a in result.arms] == [
        ("a", "completed"),
        ("dies", "failed"),
        ("b", "completed"),
        ("c", "completed"),
    ]
    assert result.arms[1].error == f"WorkerDied: the worker process running this arm died ({reason})"
    assert [(r[0], r[1]) for r in kit.recorded_runs(store)] == sorted((a.name, a.status) for a in result.arms)
    assert result.conclusion == "3/4 arms completed. Failed: dies."


def test_ctrl_c_cancels_running_and_pending_arms_then_resume_continues(tmp_path: Path, host: PluginHost) -> None:
    stops = kit.interrupt_once_run("stops", marker=tmp_path / "interrupted-once")
    runs = [kit.mock_run("a"), stops, kit.mock_run("c"), kit.mock_run("d")]
    cfg = load_yaml(kit.executor_experiment(tmp_path / "out", process(max_workers=1), runs=runs))
    store = LocalStore(tmp_path / "db.sqlite")
    with kit.interruptible(), pytest.raises(KeyboardInterrupt):
        Experiment(cfg, store=store).run()
    exp = store.list_experiments()[0]
    assert exp["status"] == "cancelled"
    assert exp["conclusion"] == "Cancelled after 1 arm(s); re-run with --resume to continue."
    # The running arm is cancelled; the pending ones never started.
    assert [(r[0], r[1], r[4]) for r in kit.recorded_runs(store)] == [
        ("a", "completed", None),
        ("stops", "cancelled", "KeyboardInterrupt: cancelled by the user"),
    ]
    assert not (tmp_path / "out" / "c").exists()
    again = Experiment(cfg, store=store, resume=True).run()
    assert [(a.name, a.status, a.resumed) for a in again.arms] == [
        ("a", "completed", True),
        ("stops", "completed", False),
        ("c", "completed", False),
        ("d", "completed", False),
    ]


def test_resume_under_process_skips_completed_arms(tmp_path: Path, host: PluginHost) -> None:
    cfg = load_yaml(two_arms(tmp_path / "out", process(max_workers=2)))
    first = Experiment(cfg).run()
    again = Experiment(cfg, resume=True).run()
    assert [a.resumed for a in again.arms] == [True, True]
    assert [a.metrics for a in again.arms] == [a.metrics for a in first.arms]


def module_train_fn(cfg: Any) -> list[Any]:
    from evsys_sdk.run.runner import run_experiment

    return run_experiment(cfg, validate=False)


def test_train_fn_must_reach_the_worker(tmp_path: Path, host: PluginHost) -> None:
    cfg = load_yaml(two_arms(tmp_path / "out", process(max_workers=2)))

    def local_fn(c: Any) -> list[Any]:
        return []

    with pytest.raises(ConfigError, match="executor 'process' runs arms in other processes: train_fn cannot be sent"):
        Experiment(cfg, train_fn=local_fn).run()
    assert not (tmp_path / "out").exists()
    result = Experiment(cfg, train_fn=module_train_fn).run()
    assert [a.status for a in result.arms] == ["completed", "completed"]


def test_an_executor_instance_is_reused_and_not_closed(tmp_path: Path, host: PluginHost) -> None:
    executor = ProcessExecutor(max_workers=2, plugins=[kit.EXECUTOR_TEST_PLUGIN])
    executor.start()
    try:
        for label in ("one", "two"):
            cfg = load_yaml(two_arms(tmp_path / label, {"kind": "sequential"}))
            result = Experiment(cfg, executor=executor).run()
            assert [a.status for a in result.arms] == ["completed", "completed"]
            assert executor.started
    finally:
        executor.close()


def test_executor_block_is_validated(tmp_path: Path, host: PluginHost) -> None:
    base = kit.executor_experiment(tmp_path / "out", {"kind": "proces"}, run=kit.mock_run("a"))
    assert any(
        "No executor registered under 'proces'; did you mean 'process'?" in p for p in validate_yaml(base, deep=True)
    )
    bad = {**base, "executor": {"kind": "process", "params": {"max_wokers": 2}}}
    assert any(
        "executor.params.max_wokers: unknown field; did you mean 'max_workers'?" in p
        for p in validate_yaml(bad, deep=True)
    )
    with pytest.raises(ConfigError, match="executor"):
        Experiment(load_yaml(bad)).run()


def test_cli_executor_flag_and_listing(tmp_path: Path, capsys: Any, host: PluginHost) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(two_arms(tmp_path / "out", {"kind": "sequential"})))
    assert main(["run", str(path), "--executor", "process", "--json", "--no-store"]) == 0
    assert [a["status"] for a in json.loads(capsys.readouterr().out)] == ["completed", "completed"]
    assert main(["list", "--kind", "executors"]) == 0
    assert capsys.readouterr().out == "executors:\n  - process\n  - sequential\n"


def test_tasks_and_outcomes_pickle(tmp_path: Path, bench_dir: Path) -> None:
    """What crosses a process boundary: the picklable arm task, and run_arm's plain result."""
    from evsys_sdk.eval.benchmark import Benchmark
    from evsys_sdk.orchestration.arm import ArmTask, run_arm

    cfg = load_yaml({"name": "exp", "output_dir": str(tmp_path / "out"), "run": kit.mock_run("a")})
    bench = Benchmark.from_dir(bench_dir)
    task = ArmTask(index=0, experiment=Experiment(cfg), benchmarks=[(bench, {"name": "qa"})])
    again = pickle.loads(pickle.dumps(task))
    outcome = run_arm(again)
    assert pickle.loads(pickle.dumps(outcome)) == outcome
    assert outcome["arm"]["status"] == "completed" and outcome["arm"]["evals"][0]["name"] == "qa"
    assert outcome["step_rows"] and outcome["step_rows"][0][1] == "train"
    assert SequentialExecutor().slots == 1 and ProcessExecutor(max_workers=3).slots == 3
