"""The pieces, without jobs: which checkpoint a requeued arm resumes from, the time budget across
attempts, each arm's sbatch resources, and the check that ``folder`` is shared."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.orchestration.arm import ArmTask
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.testing import executors as kit
from evsys_slurm import executor as slurm
from evsys_slurm.executor import SlurmExecutor, check_folder
from evsys_slurm.job import ArmJob, last_state, read_requeues

pytestmark = pytest.mark.timeout(60)


def task(tmp_path: Path, **run: Any) -> ArmTask:
    config = {"name": "exp", "output_dir": str(tmp_path / "out"), "run": {**kit.mock_run("a"), **run}}
    return ArmTask(index=0, experiment=Experiment(ExperimentConfig.model_validate(config)), cwd=str(tmp_path))


def test_last_state_prefers_the_last_logged_state_then_the_highest_numbered_directory(tmp_path: Path) -> None:
    assert last_state(tmp_path / "missing") is None
    for name in ("checkpoint-2", "checkpoint-10", "state-3", "final"):
        (tmp_path / name).mkdir()
    assert last_state(tmp_path) == str(tmp_path / "checkpoint-10")  # a trainer's saves, not yet logged
    logged = [
        {"name": "ckpt_step_4", "path": "/x/checkpoint-4", "kind": "checkpoint"},
        {"name": "state-4", "path": "tinker://run/state-4", "kind": "checkpoint"},
        {"name": "state-8", "path": "tinker://run/state-8", "kind": "checkpoint"},
        {"name": "final_checkpoint", "path": "/x/final", "kind": "checkpoint"},
    ]
    (tmp_path / "artifacts.json").write_text(json.dumps(logged))
    assert last_state(tmp_path) == "tinker://run/state-8"  # a backend's remote state is logged as an artifact


def test_checkpoint_resumes_from_the_last_state_with_what_is_left_of_the_budget(tmp_path: Path) -> None:
    t = task(tmp_path, max_seconds=100.0)
    run_dir = tmp_path / "out" / "a"
    (run_dir / "state-7").mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "train/loss": 1 / s}) + "\n" for s in (1, 2)))
    job = ArmJob(max_requeues=2, timeout_min=60, run_config=t.run.model_dump(mode="json"))
    job._started = time.time() - 30  # this attempt ran 30 s
    nxt = job.checkpoint(t)
    following, (resumed,) = nxt.function, nxt.args
    assert resumed.run.model.load_checkpoint_path == str(run_dir / "state-7")
    assert resumed.run.max_seconds is not None and 69 <= resumed.run.max_seconds <= 70
    assert t.run.max_seconds == 100.0 and t.run.model.load_checkpoint_path is None
    assert [r[0] for r in following.earlier_rows] == [1, 2] and 29 <= following.spent_seconds <= 31
    (record,) = read_requeues(run_dir)["requeues"]
    assert record["reason"] == "preempted" and record["resume_from"] == str(run_dir / "state-7")

    following._started = time.time() - 75  # the second attempt outlives the 70 s left
    assert following.checkpoint(resumed) is None
    assert read_requeues(run_dir)["stopped"] == "time budget exceeded after 100 s"
    assert len(read_requeues(run_dir)["requeues"]) == 1


def test_a_late_signal_is_the_time_limit_and_counts_against_max_requeues(tmp_path: Path) -> None:
    t = task(tmp_path)
    job = ArmJob(max_requeues=1, timeout_min=1, run_config=t.run.model_dump(mode="json"))
    job._started = time.time()
    nxt = job.checkpoint(t)
    assert nxt.function.requeues[0]["reason"] == "time limit"
    assert nxt.args[0].run.max_seconds is None  # no budget: none is invented
    nxt.function._started = time.time()
    assert nxt.function.checkpoint(nxt.args[0]) is None
    assert read_requeues(tmp_path / "out" / "a")["stopped"] == ("time limit after 1 requeue(s): max_requeues=1 reached")


def test_resources_come_from_the_executor_then_the_runs_backend_params() -> None:
    ex = SlurmExecutor(
        partition="gpu",
        account="lab",
        qos="high",
        time_limit_min=120,
        cpus_per_arm=4,
        gpus_per_arm=1,
        mem_per_arm="16G",
        sbatch={"constraint": "a100", "exclusive": True},
        setup=["module load cuda"],
        max_in_flight=8,
    )
    base = {
        "time": 120,
        "cpus_per_task": 4,
        "gpus_per_node": 1,
        "mem": "16G",
        "partition": "gpu",
        "account": "lab",
        "qos": "high",
        "signal_delay_s": 90,
        "array_parallelism": 8,
        "job_name": "evsys-exp",
        "setup": ["module load cuda"],
        "additional_parameters": {"constraint": "a100", "exclusive": True},
    }
    assert ex._resources({}, "exp") == base
    # ray's keys in backend.params: CPUs rounded up, memory in bytes
    assert ex._resources({"num_cpus": 0.5, "num_gpus": 2, "memory": 3 * 2**30, "lr": 1}, "exp") == {
        **base,
        "cpus_per_task": 1,
        "gpus_per_node": 2,
        "mem": "3072M",
    }
    plain = SlurmExecutor()._resources({}, "exp")
    assert plain == {
        "time": 60,
        "cpus_per_task": 1,
        "signal_delay_s": 90,
        "array_parallelism": 32,
        "job_name": "evsys-exp",
    }
    assert SlurmExecutor(cluster="local")._resources({}, "e") == {
        "timeout_min": 60,
        "cpus_per_task": 1,
        "gpus_per_node": 0,
        "signal_delay_s": 90,
        "setup": [],
    }
    assert SlurmExecutor(max_in_flight=5).slots == 5


def test_params_are_bounded_and_described() -> None:
    from pydantic import ValidationError

    for bad in ({"mem_per_arm": "16 GB"}, {"max_in_flight": 0}, {"time_limit_min": 0}, {"cluster": "pbs"}):
        with pytest.raises(ValidationError):
            SlurmExecutor(**bad)
    schema = SlurmExecutor.Config.model_json_schema()["properties"]
    assert all(p.get("description") for p in schema.values())


def test_folder_must_be_shared_when_the_partition_has_several_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slurm, "_fstype", lambda path: "tmpfs")
    monkeypatch.setattr(slurm, "_nodes", lambda partition: 1)
    check_folder(tmp_path / "jobs", None)  # one node: the folder is shared with itself
    monkeypatch.setattr(slurm, "_nodes", lambda partition: 4)
    with pytest.raises(ConfigError, match=r"is on a local tmpfs filesystem, but partition 'gpu' has 4 nodes"):
        check_folder(tmp_path / "jobs", "gpu")
    monkeypatch.setattr(slurm, "_fstype", lambda path: "nfs4")
    check_folder(tmp_path / "jobs", "gpu")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not writable"):
        check_folder(tmp_path / "file" / "jobs", None)


def test_without_sbatch_the_slurm_cluster_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="sbatch is not on PATH.*cluster: local"):
        SlurmExecutor(folder=str(tmp_path / "jobs")).start()
