"""The ``ray`` executor on a local Ray instance: the same experiment as ``sequential`` (arms, groups,
continual chains, evals, store records, callback events), and a crashing arm fails alone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from evsys_ray.executor import RayExecutor
from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.plugins.host import PluginHost
from evsys_sdk.testing import executors as kit  # the executor test kit: test algorithms, configs, comparisons
from evsys_sdk.tracking.store import LocalStore

RAY = kit.executor_config("ray", max_concurrent=4, resources={"num_cpus": 0.5})


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    return kit.write_qa_benchmark(tmp_path / "bench")


@pytest.fixture
def host(plugin_host: PluginHost) -> PluginHost:
    """The driver's registries: core, this package's hooks and the test algorithms (workers load them by name)."""
    import evsys_ray.hooks

    plugin_host.add_plugin(evsys_ray.hooks, "ray")
    return kit.add_executor_test_plugin(plugin_host)


def test_ray_sweep_matches_sequential(tmp_path: Path, bench_dir: Path, host: PluginHost, ray_local: Any) -> None:
    meta = {"benchmark": {"name": "qa", "path": str(bench_dir)}, "success_metric": "qa.pass_rate"}
    runs = [kit.mock_run("a", lora_rank=2), kit.mock_run("b", lora_rank=8), kit.mock_run("c", num_epochs=1)]
    (seq, seq_out, seq_store), (ray_, ray_out, ray_store) = kit.run_beside_sequential(
        tmp_path, RAY, runs=runs, n_repeats=2, metadata=meta
    )
    assert [a.name for a in ray_.arms] == ["a__s42", "a__s43", "b__s42", "b__s43", "c__s42", "c__s43"]
    assert all(a.status == "completed" and a.eval("qa") is not None for a in ray_.arms)
    assert kit.comparable_arms(ray_, ray_out) == kit.comparable_arms(seq, seq_out)
    assert ray_.conclusion == seq.conclusion and ray_.group_stats() == seq.group_stats()
    assert kit.recorded_runs(ray_store) == kit.recorded_runs(seq_store)
    assert kit.events_by_arm(ray_out) == kit.events_by_arm(seq_out)
    assert ray_local.is_initialized()  # a Ray the process started itself is used, and left up


def test_ray_continual_chains_match_sequential(
    tmp_path: Path, bench_dir: Path, host: PluginHost, ray_local: Any
) -> None:
    fields = kit.continual_fields(bench_dir)
    (seq, seq_out, seq_store), (ray_, ray_out, ray_store) = kit.run_beside_sequential(tmp_path, RAY, **fields)
    assert [(a.name, a.stage) for a in ray_.arms] == [
        ("cl_stage0__s42", 0),
        ("cl_stage1__s42", 1),
        ("cl_stage0__s43", 0),
        ("cl_stage1__s43", 1),
    ]
    assert kit.comparable_arms(ray_, ray_out) == kit.comparable_arms(seq, seq_out)
    for first, second in ((0, 1), (2, 3)):
        state = ray_.arms[first].run_result.artifacts["state-final"]  # type: ignore[union-attr]
        assert ray_.arms[second].run_config.model.init_from_checkpoint == state
    assert ray_.stage_matrix() == seq.stage_matrix()
    assert kit.recorded_runs(ray_store) == kit.recorded_runs(seq_store)


def test_a_crashing_arm_fails_alone_and_resume_skips_the_rest(tmp_path: Path, host: PluginHost, ray_local: Any) -> None:
    cfg = load_yaml(
        kit.executor_experiment(
            tmp_path / "out", RAY, runs=[kit.mock_run("a"), kit.crash_run("dies"), kit.mock_run("b")]
        )
    )
    result = Experiment(cfg).run()
    assert [(a.name, a.status) for a in result.arms] == [("a", "completed"), ("dies", "failed"), ("b", "completed")]
    assert (result.arms[1].error or "").startswith("WorkerDied: the Ray worker running this arm died")
    again = Experiment(cfg, resume=True).run()
    assert [(a.name, a.status, a.resumed) for a in again.arms] == [
        ("a", "completed", True),
        ("dies", "failed", False),
        ("b", "completed", True),
    ]


def test_ctrl_c_cancels_the_running_arm_then_resume_continues(tmp_path: Path, host: PluginHost, ray_local: Any) -> None:
    one_at_a_time = {**RAY, "params": {**RAY["params"], "max_concurrent": 1}}
    runs = [kit.mock_run("a"), kit.interrupt_once_run("stops", marker=tmp_path / "interrupted-once"), kit.mock_run("c")]
    cfg = load_yaml(kit.executor_experiment(tmp_path / "out", one_at_a_time, runs=runs))
    store = LocalStore(tmp_path / "db.sqlite")
    with kit.interruptible(), pytest.raises(KeyboardInterrupt):
        Experiment(cfg, store=store).run()
    assert store.list_experiments()[0]["status"] == "cancelled"
    assert [(r[0], r[1]) for r in kit.recorded_runs(store)] == [("a", "completed"), ("stops", "cancelled")]
    again = Experiment(cfg, store=store, resume=True).run()
    assert [(a.name, a.status, a.resumed) for a in again.arms] == [
        ("a", "completed", True),
        ("stops", "completed", False),
        ("c", "completed", False),
    ]


@pytest.mark.timeout(180)
def test_an_arm_past_its_time_budget_is_killed(tmp_path: Path, host: PluginHost, ray_local: Any) -> None:
    executor = {**RAY, "params": {**RAY["params"], "kill_grace_seconds": 0.5}}
    runs = [kit.stall_run("stuck", 5.0), kit.mock_run("fine")]  # 5 s: time to log its step under load
    store = LocalStore(tmp_path / "db.sqlite")
    started = time.monotonic()
    result = Experiment(load_yaml(kit.executor_experiment(tmp_path / "out", executor, runs=runs)), store=store).run()
    assert time.monotonic() - started < 90  # the stall would sleep 600 s
    assert [(a.name, a.status, a.error) for a in result.arms] == [
        ("stuck", "failed", "time budget exceeded after 5 s"),
        ("fine", "completed", None),
    ]
    assert result.arms[0].metrics == {"train/loss": 1.5}  # what it logged before it hung
    stuck = next(r for r in store.experiment_runs(store.list_experiments()[0]["id"]) if r["name"] == "stuck")
    assert [(r["step"], r["metrics"]) for r in store.step_metrics(stuck["id"])] == [(1, {"train/loss": 1.5})]


def test_slots_fit_the_cluster(host: PluginHost, ray_local: Any) -> None:
    executor = RayExecutor(resources={"num_cpus": 0.5})
    executor.start()
    assert executor.slots == 4  # 2 CPUs / 0.5 per arm
    executor.close()
    assert ray_local.is_initialized()
    assert RayExecutor(max_concurrent=3).slots == 3


def test_per_arm_resources() -> None:
    executor = RayExecutor(resources={"num_cpus": 2, "num_gpus": 1, "TPU": 1})
    assert executor._request({}) == {"num_cpus": 2, "num_gpus": 1, "resources": {"TPU": 1}}
    assert executor._request({"num_gpus": 2, "memory": 1e9, "lr": 3}) == {
        "num_cpus": 2,
        "num_gpus": 2,
        "memory": 1e9,
        "resources": {"TPU": 1},
    }
    assert RayExecutor()._request({}) == {"num_cpus": 1}
    assert RayExecutor(resources={"num_gpus": 1})._fit({"CPU": 8.0, "GPU": 2.0}) == 2
    assert RayExecutor(resources={"num_cpus": 0})._fit({"CPU": 8.0}) == 8
