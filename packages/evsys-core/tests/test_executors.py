"""Executors: the ``process`` executor gives the same experiment as ``sequential`` (arms, groups, chains,
evals, store records, callback events), a crashing arm fails alone, Ctrl-C cancels, resume continues."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import _executors_plugin
import pytest

from evsys_sdk.cli import main
from evsys_sdk.errors import ConfigError
from evsys_sdk.executors import ProcessExecutor, SequentialExecutor
from evsys_sdk.experiment import Experiment
from evsys_sdk.plugins import PluginHost
from evsys_sdk.results import ExperimentResult
from evsys_sdk.store import LocalStore
from evsys_sdk.yaml_loader import load_yaml, validate_yaml

PLUGIN = "_executors_plugin"
QA = {f"q{i}": f"a{i}" for i in range(8)}


def tasks() -> list[dict[str, Any]]:
    return [
        {"task_id": q, "instruction": q, "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": a}}
        for q, a in QA.items()
    ]


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks()))
    return folder


@pytest.fixture
def host(plugin_host: PluginHost) -> PluginHost:
    """The driver knows the test plugin; workers load it through ``executor.params.plugins``."""
    plugin_host.add_plugin(_executors_plugin, PLUGIN)
    return plugin_host


def run(name: str, algorithm: str = "sft", **params: Any) -> dict[str, Any]:
    base = {"batch_size": 2, "num_epochs": 2} if algorithm == "sft" else {}
    return {
        "name": name,
        "model": {"name": "tiny"},
        "backend": {"kind": "mock"},
        "data": {"source_kind": "in_memory", "rows": tasks()[:6]},
        "algorithm": {"kind": algorithm, "params": {**base, **params}},
    }


def experiment(out: Path, executor: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "exp", "output_dir": str(out), "executor": executor, "callbacks": [{"kind": "jsonl"}], **fields}


def process(**params: Any) -> dict[str, Any]:
    return {"kind": "process", "params": {"plugins": [PLUGIN], **params}}


def normalized(result: ExperimentResult, out: Path) -> list[dict[str, Any]]:
    """Every arm as JSON with this run's output dir and timings taken out, for comparing executors."""
    arms = []
    for arm in result.arms:
        data = arm.to_json()
        for key in ("train_seconds", "eval_seconds", "run_id", "group_id"):
            data.pop(key)
        for e in data["evals"]:
            e.pop("eval_seconds")
        arms.append(json.loads(json.dumps(data).replace(str(out), "<out>")))
    return arms


def events(out: Path) -> list[tuple[str, Any]]:
    """The callback events in order, each with its arm (timestamps and paths dropped)."""
    rows = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return [(r["event"], r.get("arm") or r.get("group")) for r in rows]


def store_runs(store: LocalStore) -> list[tuple[Any, ...]]:
    """The recorded runs by name (arms in flight together are created in the order they were submitted)."""
    exp = store.list_experiments()[0]
    return sorted(
        (r["name"], r["status"], r["group_name"], json.dumps(r["metrics"], sort_keys=True), r["error_message"])
        for r in store.experiment_runs(exp["id"])
    )


def run_both(tmp_path: Path, **fields: Any) -> tuple[Any, Any]:
    """The same experiment under sequential and under process; each with its own output dir and store."""
    outcomes = []
    for label, executor in (("seq", {"kind": "sequential"}), ("proc", process(max_workers=2))):
        out = tmp_path / label
        store = LocalStore(tmp_path / f"{label}.db")
        result = Experiment(load_yaml(experiment(out, executor, **fields)), store=store).run()
        outcomes.append((result, out, store))
    return outcomes[0], outcomes[1]


def test_process_sweep_matches_sequential(tmp_path: Path, bench_dir: Path, host: PluginHost) -> None:
    meta = {"benchmark": [{"name": "qa", "path": str(bench_dir)}], "success_metric": "qa.pass_rate"}
    runs = [run("a", lora_rank=2), run("b", lora_rank=8), run("c", num_epochs=1)]
    (seq, seq_out, seq_store), (proc, proc_out, proc_store) = run_both(tmp_path, runs=runs, n_repeats=2, metadata=meta)
    assert [a.name for a in proc.arms] == ["a__s42", "a__s43", "b__s42", "b__s43", "c__s42", "c__s43"]
    assert normalized(proc, proc_out) == normalized(seq, seq_out)
    assert all(a.status == "completed" and a.eval("qa") is not None for a in proc.arms)
    assert (proc.best_arm and proc.best_arm.name) == (seq.best_arm and seq.best_arm.name)
    assert proc.conclusion == seq.conclusion and proc.group_stats() == seq.group_stats()
    assert store_runs(proc_store) == store_runs(seq_store)
    # Every arm's events arrive together and in the sequential order of events within an arm.
    per_arm = {arm.name: [e for e, a in events(proc_out) if a == arm.name] for arm in proc.arms}
    assert per_arm == {arm.name: [e for e, a in events(seq_out) if a == arm.name] for arm in seq.arms}
    assert {e for e, _ in events(proc_out)} == {e for e, _ in events(seq_out)}


def test_continual_chains_stay_ordered_and_match_sequential(tmp_path: Path, bench_dir: Path, host: PluginHost) -> None:
    stages = [{"source_kind": "in_memory", "rows": tasks()[:4]}, {"source_kind": "in_memory", "rows": tasks()[4:]}]
    fields = {
        "run": {k: v for k, v in run("cl").items() if k != "data"},
        "continual": {"datasets": stages},
        "n_repeats": 2,
        "metadata": {"benchmark": {"name": "qa", "path": str(bench_dir)}},
    }
    (seq, seq_out, seq_store), (proc, proc_out, proc_store) = run_both(tmp_path, **fields)
    assert [(a.name, a.stage, a.group_name) for a in proc.arms] == [
        ("cl_stage0__s42", 0, "cl_stage0"),
        ("cl_stage1__s42", 1, "cl_stage1"),
        ("cl_stage0__s43", 0, "cl_stage0"),
        ("cl_stage1__s43", 1, "cl_stage1"),
    ]
    assert normalized(proc, proc_out) == normalized(seq, seq_out)
    # Each second stage started from its own chain's first-stage state.
    for first, second in ((0, 1), (2, 3)):
        state = proc.arms[first].run_result.artifacts["state-final"]  # type: ignore[union-attr]
        assert proc.arms[second].run_config.model.init_from_checkpoint == state
    assert proc.stage_matrix() == seq.stage_matrix()
    assert store_runs(proc_store) == store_runs(seq_store)


@pytest.mark.parametrize(("how", "reason"), [("kill", "killed by SIGKILL"), ("exit", "exit code 3")])
def test_an_arm_that_kills_its_process_fails_alone(tmp_path: Path, host: PluginHost, how: str, reason: str) -> None:
    runs = [run("a"), run("dies", "crash", how=how), run("b"), run("c")]
    store = LocalStore(tmp_path / "db.sqlite")
    result = Experiment(load_yaml(experiment(tmp_path / "out", process(max_workers=2), runs=runs)), store=store).run()
    assert [(a.name, a.status) for a in result.arms] == [
        ("a", "completed"),
        ("dies", "failed"),
        ("b", "completed"),
        ("c", "completed"),
    ]
    assert result.arms[1].error == f"WorkerDied: the worker process running this arm died ({reason})"
    assert [(r[0], r[1]) for r in store_runs(store)] == sorted((a.name, a.status) for a in result.arms)
    assert result.conclusion == "3/4 arms completed. Failed: dies."


def test_ctrl_c_cancels_running_and_pending_arms_then_resume_continues(tmp_path: Path, host: PluginHost) -> None:
    params = {"driver_pid": os.getpid(), "marker": str(tmp_path / "interrupted-once")}
    runs = [run("a"), run("stops", "interrupt_once", **params), run("c"), run("d")]
    cfg = load_yaml(experiment(tmp_path / "out", process(max_workers=1), runs=runs))
    store = LocalStore(tmp_path / "db.sqlite")
    with pytest.raises(KeyboardInterrupt):
        Experiment(cfg, store=store).run()
    exp = store.list_experiments()[0]
    assert exp["status"] == "cancelled"
    assert exp["conclusion"] == "Cancelled after 1 arm(s); re-run with --resume to continue."
    # The running arm is cancelled; the pending ones never started.
    assert [(r[0], r[1], r[4]) for r in store_runs(store)] == [
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
    cfg = load_yaml(experiment(tmp_path / "out", process(max_workers=2), runs=[run("a"), run("b")]))
    first = Experiment(cfg).run()
    again = Experiment(cfg, resume=True).run()
    assert [a.resumed for a in again.arms] == [True, True]
    assert [a.metrics for a in again.arms] == [a.metrics for a in first.arms]


def module_train_fn(cfg: Any) -> list[Any]:
    from evsys_sdk.runner import run_experiment

    return run_experiment(cfg, validate=False)


def test_train_fn_must_reach_the_worker(tmp_path: Path, host: PluginHost) -> None:
    cfg = load_yaml(experiment(tmp_path / "out", process(max_workers=2), runs=[run("a"), run("b")]))

    def local_fn(c: Any) -> list[Any]:
        return []

    with pytest.raises(ConfigError, match="executor 'process' runs arms in other processes: train_fn cannot be sent"):
        Experiment(cfg, train_fn=local_fn).run()
    assert not (tmp_path / "out").exists()
    result = Experiment(cfg, train_fn=module_train_fn).run()
    assert [a.status for a in result.arms] == ["completed", "completed"]


def test_an_executor_instance_is_reused_and_not_closed(tmp_path: Path, host: PluginHost) -> None:
    executor = ProcessExecutor(max_workers=2, plugins=[PLUGIN])
    executor.start()
    try:
        for label in ("one", "two"):
            cfg = load_yaml(experiment(tmp_path / label, {"kind": "sequential"}, runs=[run("a"), run("b")]))
            result = Experiment(cfg, executor=executor).run()
            assert [a.status for a in result.arms] == ["completed", "completed"]
            assert executor.started
    finally:
        executor.close()


def test_executor_block_is_validated(tmp_path: Path, host: PluginHost) -> None:
    base = experiment(tmp_path / "out", {"kind": "proces"}, run=run("a"))
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
    path.write_text(json.dumps(experiment(tmp_path / "out", {"kind": "sequential"}, runs=[run("a"), run("b")])))
    assert main(["run", str(path), "--executor", "process", "--json", "--no-store"]) == 0
    assert [a["status"] for a in json.loads(capsys.readouterr().out)] == ["completed", "completed"]
    assert main(["list", "--kind", "executors"]) == 0
    assert capsys.readouterr().out == "executors:\n  - process\n  - sequential\n"


def test_tasks_and_outcomes_pickle(tmp_path: Path, bench_dir: Path) -> None:
    """What crosses a process boundary: the picklable arm task, and run_arm's plain result."""
    from evsys_sdk.arm import ArmTask, run_arm
    from evsys_sdk.benchmark import Benchmark

    cfg = load_yaml({"name": "exp", "output_dir": str(tmp_path / "out"), "run": run("a")})
    bench = Benchmark.from_dir(bench_dir)
    task = ArmTask(index=0, config=cfg.model_dump(mode="json"), benchmarks=[(bench, {"name": "qa"})])
    again = pickle.loads(pickle.dumps(task))
    outcome = run_arm(again)
    assert pickle.loads(pickle.dumps(outcome)) == outcome
    assert outcome["arm"]["status"] == "completed" and outcome["arm"]["evals"][0]["name"] == "qa"
    assert outcome["step_rows"] and outcome["step_rows"][0][1] == "train"
    assert SequentialExecutor().slots == 1 and ProcessExecutor(max_workers=3).slots == 3
