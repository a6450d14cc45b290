"""The ``slurm`` executor on submitit's LocalExecutor (``cluster: local``): the same job files and the same
checkpoint/requeue code as on Slurm, the jobs as subprocesses of this machine. The arm contract (names,
groups, continual chains, records), a crashing arm, and preemption with requeue and resume."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.plugins.host import PluginHost
from evsys_sdk.testing import executors as kit
from evsys_sdk.tracking.store import LocalStore
from evsys_slurm.job import REQUEUES_FILE, read_requeues

pytestmark = pytest.mark.timeout(240)


def local(tmp_path: Path, **params: object) -> dict[str, object]:
    base = {"cluster": "local", "folder": str(tmp_path / "jobs"), "poll_seconds": 0.1, "results_timeout_s": 1}
    return kit.executor_config("slurm", plugins=[kit.EXECUTOR_TEST_PLUGIN, "evsys_slurm.testing"], **base, **params)


def counting_run(name: str, steps: int = 30, step_seconds: float = 0.2) -> dict[str, object]:
    run = kit.mock_run(name, "resumable_count")
    run["algorithm"] = {"kind": "resumable_count", "params": {"steps": steps, "step_seconds": step_seconds}}
    return run


def test_sweep_and_continual_chains_match_sequential(tmp_path: Path, host: PluginHost) -> None:
    bench = kit.write_qa_benchmark(tmp_path / "bench")
    meta = {"benchmark": {"name": "qa", "path": str(bench)}, "success_metric": "qa.pass_rate"}
    runs = [kit.mock_run("a", lora_rank=2), kit.mock_run("b", lora_rank=8)]
    (seq, seq_out, seq_store), (sl, sl_out, sl_store) = kit.run_beside_sequential(
        tmp_path / "sweep", local(tmp_path), runs=runs, n_repeats=2, metadata=meta
    )
    assert [a.name for a in sl.arms] == ["a__s42", "a__s43", "b__s42", "b__s43"]
    assert kit.comparable_arms(sl, sl_out) == kit.comparable_arms(seq, seq_out)
    assert sl.conclusion == seq.conclusion and sl.group_stats() == seq.group_stats()
    assert kit.recorded_runs(sl_store) == kit.recorded_runs(seq_store)
    assert kit.events_by_arm(sl_out) == kit.events_by_arm(seq_out)

    (seq, seq_out, seq_store), (sl, sl_out, sl_store) = kit.run_beside_sequential(
        tmp_path / "continual", local(tmp_path), **kit.continual_fields(bench)
    )
    assert [(a.name, a.stage) for a in sl.arms] == [
        ("cl_stage0__s42", 0),
        ("cl_stage1__s42", 1),
        ("cl_stage0__s43", 0),
        ("cl_stage1__s43", 1),
    ]
    assert kit.comparable_arms(sl, sl_out) == kit.comparable_arms(seq, seq_out)
    assert sl.stage_matrix() == seq.stage_matrix()
    assert kit.recorded_runs(sl_store) == kit.recorded_runs(seq_store)


def test_a_crashing_arm_fails_alone_and_resume_skips_the_rest(tmp_path: Path, host: PluginHost) -> None:
    runs = [kit.mock_run("a"), kit.crash_run("dies"), kit.mock_run("b")]
    cfg = load_yaml(kit.executor_experiment(tmp_path / "out", local(tmp_path), runs=runs))
    result = Experiment(cfg).run()
    assert [(a.name, a.status) for a in result.arms] == [("a", "completed"), ("dies", "failed"), ("b", "completed")]
    assert (result.arms[1].error or "").startswith("WorkerDied: the job ")
    again = Experiment(cfg, resume=True).run()
    assert [(a.name, a.status, a.resumed) for a in again.arms] == [
        ("a", "completed", True),
        ("dies", "failed", False),
        ("b", "completed", True),
    ]


def _preempt_when(executor: object, state: Path) -> None:
    """Once the arm has saved ``state``, signal its job's task as Slurm does on preemption (USR2 to the
    processes of the job; submitit's local controller only forwards it near the time limit)."""
    deadline = time.monotonic() + 60
    while not state.exists():
        assert time.monotonic() < deadline, f"the arm never saved {state}"
        time.sleep(0.05)
    (arm,) = executor._live  # type: ignore[attr-defined]
    controller = arm.job._process.pid
    for children in Path(f"/proc/{controller}/task").glob("*/children"):
        for pid in children.read_text().split():
            os.kill(int(pid), signal.SIGUSR2)


def test_a_preempted_arm_is_requeued_and_resumes_from_its_last_state(tmp_path: Path, host: PluginHost) -> None:
    import threading

    from evsys_sdk.orchestration.executors import build_executor

    executor = build_executor("slurm", local(tmp_path)["params"])  # type: ignore[arg-type]
    cfg = load_yaml(kit.executor_experiment(tmp_path / "out", local(tmp_path), runs=[counting_run("count")]))
    store = LocalStore(tmp_path / "db.sqlite")
    threading.Thread(target=_preempt_when, args=(executor, tmp_path / "out" / "count" / "state-5"), daemon=True).start()
    executor.start()
    try:
        (arm,) = Experiment(cfg, store=store, executor=executor).run().arms
    finally:
        executor.close()
    assert arm.status == "completed", arm.error
    assert 5 < arm.metrics["first_step"] < 30 and arm.metrics["slurm/requeues"] == 1.0
    (requeue,) = read_requeues(tmp_path / "out" / "count")["requeues"]
    assert requeue["reason"] == "preempted"
    assert int(Path(requeue["resume_from"]).name.split("-")[1]) == arm.metrics["first_step"] - 1
    assert arm.run_result is not None
    assert arm.run_result.artifacts["slurm_requeues"] == str(tmp_path / "out" / "count" / REQUEUES_FILE)
    # the step curve of both attempts, each step once; the run config as the driver sent it
    (run,) = store.experiment_runs(store.list_experiments()[0]["id"])
    steps = [row["step"] for row in store.step_metrics(run["id"]) if "train/loss" in row["metrics"]]
    assert steps == list(range(1, 31))
    assert arm.run_config.model.load_checkpoint_path is None
    again = Experiment(cfg, store=store, resume=True).run()
    assert again.arms[0].resumed and again.arms[0].status == "completed"


def test_past_max_requeues_the_arm_fails_with_its_partial_metrics(tmp_path: Path, host: PluginHost) -> None:
    import threading

    from evsys_sdk.orchestration.executors import build_executor

    params = local(tmp_path, max_requeues=0)["params"]
    executor = build_executor("slurm", params)  # type: ignore[arg-type]
    cfg = load_yaml(
        kit.executor_experiment(tmp_path / "out", local(tmp_path, max_requeues=0), runs=[counting_run("c")])
    )
    threading.Thread(target=_preempt_when, args=(executor, tmp_path / "out" / "c" / "state-3"), daemon=True).start()
    executor.start()
    try:
        (arm,) = Experiment(cfg, executor=executor).run().arms
    finally:
        executor.close()
    assert arm.status == "failed"
    assert arm.error == "preempted after 0 requeue(s): max_requeues=0 reached"
    assert arm.metrics["train/loss"] <= 1 / 3 and arm.metrics["slurm/requeues"] == 0.0


def test_at_its_time_limit_an_arm_past_max_requeues_fails(tmp_path: Path, host: PluginHost) -> None:
    """A signal to a job with a one-minute limit is its time limit (submitit's rule: past 80% or within
    10 minutes of the limit); the signal is sent once the arm has saved ``state-3``."""
    import threading

    from evsys_sdk.orchestration.executors import build_executor

    params = local(tmp_path, max_requeues=0, time_limit_min=1)
    executor = build_executor("slurm", params["params"])
    cfg = load_yaml(kit.executor_experiment(tmp_path / "out", params, runs=[counting_run("c", 50)]))
    threading.Thread(target=_preempt_when, args=(executor, tmp_path / "out" / "c" / "state-3"), daemon=True).start()
    executor.start()
    try:
        (arm,) = Experiment(cfg, executor=executor).run().arms
    finally:
        executor.close()
    assert arm.status == "failed"
    assert arm.error == "time limit after 0 requeue(s): max_requeues=0 reached"
    assert 1 / 50 < arm.metrics["train/loss"] <= 1 / 3


def test_an_arm_stuck_past_its_budget_is_killed_in_its_job(tmp_path: Path, host: PluginHost) -> None:
    """``stall`` never checks its budget: the job's watchdog ends it ``kill_grace_seconds`` past it."""
    runs = [kit.stall_run("stuck", max_seconds=8), kit.mock_run("b")]
    cfg = load_yaml(kit.executor_experiment(tmp_path / "out", local(tmp_path, kill_grace_seconds=1), runs=runs))
    start = time.monotonic()
    result = Experiment(cfg).run()
    assert [(a.name, a.status) for a in result.arms] == [("stuck", "failed"), ("b", "completed")]
    assert result.arms[0].error == "time budget exceeded after 8 s"
    assert result.arms[0].metrics["train/loss"] == 1.5  # what it logged before it hung
    assert time.monotonic() - start < 60


def test_a_job_that_fails_outside_its_arm_fails_that_arm_with_the_reason(tmp_path: Path, host: PluginHost) -> None:
    """A hooks module the jobs cannot import: each job's Python raises before the arm starts."""
    executor = local(tmp_path)
    executor["params"]["plugins"] = [*executor["params"]["plugins"], "evsys_no_such_hooks"]  # type: ignore[index]
    cfg = load_yaml(kit.executor_experiment(tmp_path / "out", executor, runs=[kit.mock_run("a")]))
    (arm,) = Experiment(cfg).run().arms
    assert arm.status == "failed"
    assert arm.error == "RuntimeError: ModuleNotFoundError: No module named 'evsys_no_such_hooks'"
