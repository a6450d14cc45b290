"""The ``slurm`` executor against a real Slurm: the one-node cluster of ``ci/start-slurm.sh`` (slurmctld,
slurmd, slurmdbd on MariaDB, munge; partitions ``debug`` and ``urgent``, whose jobs preempt debug's).
Submit, job arrays, results, a failing arm, preemption with requeue and resume, Ctrl-C, and re-attaching
to a running job on ``--resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.plugins.host import PluginHost
from evsys_sdk.testing import executors as kit
from evsys_sdk.tracking.store import LocalStore
from evsys_slurm.executor import JOB_RECORD
from evsys_slurm.job import read_requeues

pytestmark = pytest.mark.timeout(300)
Sacct = Callable[[str, int], list[dict[str, str]]]


def on_slurm(tmp_path: Path, **params: Any) -> dict[str, Any]:
    base = {"folder": str(tmp_path / "jobs"), "poll_seconds": 0.2, "results_timeout_s": 2}
    return kit.executor_config("slurm", plugins=[kit.EXECUTOR_TEST_PLUGIN, "evsys_slurm.testing"], **base, **params)


def unique(label: str) -> str:
    """An experiment name no earlier test used: its jobs are ``evsys-<name>`` in sacct."""
    return f"{label}-{os.getpid()}-{time.monotonic_ns()}"


def node_cpus() -> int:
    out = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%c"], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def test_a_sweep_goes_out_as_one_job_array_and_matches_sequential(
    tmp_path: Path, host: PluginHost, slurm: Sacct
) -> None:
    bench = kit.write_qa_benchmark(tmp_path / "bench")
    meta = {"benchmark": {"name": "qa", "path": str(bench)}, "success_metric": "qa.pass_rate"}
    runs = [kit.mock_run("a", lora_rank=2), kit.mock_run("b", lora_rank=8), kit.mock_run("c", num_epochs=1)]
    name = unique("sweep")
    (seq, seq_out, seq_store), (sl, sl_out, sl_store) = kit.run_beside_sequential(
        tmp_path, on_slurm(tmp_path), runs=runs, n_repeats=2, metadata=meta, name=name
    )
    assert [a.name for a in sl.arms] == ["a__s42", "a__s43", "b__s42", "b__s43", "c__s42", "c__s43"]
    assert kit.comparable_arms(sl, sl_out) == kit.comparable_arms(seq, seq_out)
    assert sl.conclusion == seq.conclusion and sl.group_stats() == seq.group_stats()
    assert kit.recorded_runs(sl_store) == kit.recorded_runs(seq_store)
    assert kit.events_by_arm(sl_out) == kit.events_by_arm(seq_out)
    jobs = slurm(f"evsys-{name}", 6)
    assert len(jobs) == 6 and all(j["State"] == "COMPLETED" for j in jobs), jobs
    assert len({j["JobID"].split("_")[0] for j in jobs}) == 1  # one array, six tasks
    assert sorted(int(j["JobID"].split("_")[1]) for j in jobs) == list(range(6))


def test_continual_chains_run_stage_after_stage(tmp_path: Path, host: PluginHost, slurm: Sacct) -> None:
    bench = kit.write_qa_benchmark(tmp_path / "bench")
    (seq, seq_out, _), (sl, sl_out, _) = kit.run_beside_sequential(
        tmp_path, on_slurm(tmp_path), **kit.continual_fields(bench)
    )
    assert [(a.name, a.stage) for a in sl.arms] == [(a.name, a.stage) for a in seq.arms]
    assert kit.comparable_arms(sl, sl_out) == kit.comparable_arms(seq, seq_out)
    for first, second in ((0, 1), (2, 3)):
        state = sl.arms[first].run_result.artifacts["state-final"]  # type: ignore[union-attr]
        assert sl.arms[second].run_config.model.init_from_checkpoint == state


def test_a_crashing_arm_and_one_stuck_past_its_budget_fail_alone(
    tmp_path: Path, host: PluginHost, slurm: Sacct
) -> None:
    runs = [kit.mock_run("a"), kit.crash_run("dies"), kit.stall_run("stuck", max_seconds=8), kit.mock_run("b")]
    executor = on_slurm(tmp_path, kill_grace_seconds=1)
    cfg = load_yaml(kit.executor_experiment(tmp_path / "out", executor, runs=runs, name=unique("crash")))
    result = Experiment(cfg).run()
    assert [(a.name, a.status) for a in result.arms] == [
        ("a", "completed"),
        ("dies", "failed"),
        ("stuck", "failed"),
        ("b", "completed"),
    ]
    assert (result.arms[1].error or "").startswith("WorkerDied: the Slurm job ")
    assert "ended FAILED (killed by SIGKILL) without a result" in (result.arms[1].error or "")
    assert result.arms[2].error == "time budget exceeded after 8 s"
    assert result.arms[2].metrics["train/loss"] == 1.5


def counting_run(name: str, steps: int, step_seconds: float) -> dict[str, Any]:
    run = kit.mock_run(name, "resumable_count")
    run["algorithm"] = {"kind": "resumable_count", "params": {"steps": steps, "step_seconds": step_seconds}}
    return run


def _preempt_when(state: Path, cpus: int) -> None:
    """Once the arm has saved ``state``, a job in the ``urgent`` partition takes the whole node."""
    deadline = time.monotonic() + 120
    while not state.exists():
        assert time.monotonic() < deadline, f"the arm never saved {state}"
        time.sleep(0.05)
    cmd = ["sbatch", "-p", "urgent", "-c", str(cpus), "-J", "evsys-urgent", "-o", "/dev/null", "--wrap", "sleep 1"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def test_a_preempted_arm_is_requeued_and_resumes_from_its_last_state(
    tmp_path: Path, host: PluginHost, slurm: Sacct
) -> None:
    cpus = node_cpus()
    name = unique("preempt")
    executor = on_slurm(tmp_path, cpus_per_arm=cpus)
    cfg = load_yaml(
        kit.executor_experiment(tmp_path / "out", executor, runs=[counting_run("count", 30, 0.2)], name=name)
    )
    store = LocalStore(tmp_path / "db.sqlite")
    threading.Thread(target=_preempt_when, args=(tmp_path / "out" / "count" / "state-5", cpus), daemon=True).start()
    (arm,) = Experiment(cfg, store=store).run().arms
    assert arm.status == "completed", arm.error
    assert 5 < arm.metrics["first_step"] < 30 and arm.metrics["slurm/requeues"] == 1.0
    (requeue,) = read_requeues(tmp_path / "out" / "count")["requeues"]
    assert requeue["reason"] == "preempted"
    assert requeue["resume_from"] == str(tmp_path / "out" / "count" / f"state-{int(arm.metrics['first_step']) - 1}")
    (job,) = slurm(f"evsys-{name}", 1)  # requeued under the same job id, not submitted again
    assert job["State"] == "COMPLETED"
    (run,) = store.experiment_runs(store.list_experiments()[0]["id"])
    steps = [row["step"] for row in store.step_metrics(run["id"]) if "train/loss" in row["metrics"]]
    assert steps == list(range(1, 31))


def test_ctrl_c_cancels_the_jobs_then_resume_continues(tmp_path: Path, host: PluginHost, slurm: Sacct) -> None:
    name = unique("ctrl-c")
    runs = [kit.mock_run("a"), kit.interrupt_once_run("stops", marker=tmp_path / "interrupted-once"), kit.mock_run("c")]
    cfg = load_yaml(
        kit.executor_experiment(tmp_path / "out", on_slurm(tmp_path, max_in_flight=1), runs=runs, name=name)
    )
    store = LocalStore(tmp_path / "db.sqlite")
    with kit.interruptible(), pytest.raises(KeyboardInterrupt):  # Ctrl-C works even under nohup
        Experiment(cfg, store=store).run()
    assert store.list_experiments()[0]["status"] == "cancelled"
    assert [(r[0], r[1]) for r in kit.recorded_runs(store)] == [("a", "completed"), ("stops", "cancelled")]
    assert [j["State"] for j in slurm(f"evsys-{name}", 2)] == ["COMPLETED", "CANCELLED by 0"]
    assert not (tmp_path / "out" / "stops" / JOB_RECORD).exists()
    again = Experiment(cfg, store=store, resume=True).run()
    assert [(a.name, a.status, a.resumed) for a in again.arms] == [
        ("a", "completed", True),
        ("stops", "completed", False),
        ("c", "completed", False),
    ]
    # "a" came from its arm_result.json: no job for it; "stops" ran again
    states = [j["State"] for j in slurm(f"evsys-{name}", 4)]
    assert states == ["COMPLETED", "CANCELLED by 0", "COMPLETED", "COMPLETED"]


def test_resume_re_attaches_to_the_job_a_killed_driver_left_running(tmp_path: Path, slurm: Sacct) -> None:
    """``evsys run CONFIG --executor slurm``, the driver killed (SIGKILL: no Ctrl-C, nothing cancelled)
    while its arm runs; ``--resume`` waits for that same job instead of submitting the arm again."""
    name = unique("reattach")
    config = kit.executor_experiment(
        tmp_path / "out",
        {"kind": "sequential"},
        runs=[kit.mock_run("slow", num_epochs=10, step_seconds=0.4)],
        name=name,
    )
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    cli = [sys.executable, "-m", "evsys_sdk.cli", "run", str(path), "--executor", "slurm"]
    env = {**os.environ, "EVSYS_WORKSPACE": os.environ["EVSYS_WORKSPACE"]}
    driver = subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = tmp_path / "out" / "slow" / "logs" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert time.monotonic() < deadline and driver.poll() is None, driver.communicate()
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=60)
    first = json.loads((tmp_path / "out" / "slow" / JOB_RECORD).read_text())["job_id"]
    queue = ["squeue", "-h", "-n", f"evsys-{name}", "-o", "%i %T"]
    assert subprocess.run(queue, capture_output=True, text=True, check=True).stdout.split() == [first, "RUNNING"]
    resumed = subprocess.run([*cli, "--resume"], env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert [(j["JobID"], j["State"]) for j in slurm(f"evsys-{name}", 1)] == [(first, "COMPLETED")]
    rows = metrics.read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows if "train/loss" in r] == list(range(1, 31))


def test_evsys_evolve_runs_its_candidates_as_slurm_jobs(tmp_path: Path, slurm: Sacct) -> None:
    """``evsys evolve CONFIG --executor slurm``: the search's arms go through this executor unchanged."""
    import yaml

    repo = Path(__file__).resolve().parents[3]
    config = yaml.safe_load((repo / "examples" / "evolve" / "config.yaml").read_text())
    name = unique("evolve")
    config.update(name=name, output_dir=str(tmp_path / "out"), n_repeats=2)
    config["data_store"]["params"]["root"] = str(repo / "examples" / "quickstart")
    config["search"].update(budget={"candidates": 3}, parallel=3, confirm_seeds=2)
    path = tmp_path / "evolve.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = [sys.executable, "-m", "evsys_sdk.cli", "evolve", str(path), "--executor", "slurm"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "3 candidates, 8 arms" in done.stdout
    jobs = slurm(f"evsys-{name}", 8)
    assert len(jobs) == 8 and {j["State"] for j in jobs} == {"COMPLETED"}
