"""The ``ray`` executor on a local Ray instance: the same experiment as ``sequential`` (arms, groups,
continual chains, evals, store records, callback events), and a crashing arm fails alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import _ray_test_plugin
import pytest

from evsys_ray.executor import RayExecutor
from evsys_sdk.experiment import Experiment
from evsys_sdk.plugins import PluginHost
from evsys_sdk.results import ExperimentResult
from evsys_sdk.store import LocalStore
from evsys_sdk.yaml_loader import load_yaml

PLUGIN = "_ray_test_plugin"
QA = {f"q{i}": f"a{i}" for i in range(8)}
RAY = {"kind": "ray", "params": {"max_concurrent": 4, "resources": {"num_cpus": 0.5}, "plugins": [PLUGIN]}}


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
    """The driver's registries: core, this package's hooks and the test plugin (workers load it by name)."""
    import evsys_ray.hooks

    plugin_host.add_plugin(evsys_ray.hooks, "ray")
    plugin_host.add_plugin(_ray_test_plugin, PLUGIN)
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


def arm_events(out: Path) -> dict[str, list[str]]:
    rows = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    per_arm: dict[str, list[str]] = {}
    for r in rows:
        if r.get("arm"):
            per_arm.setdefault(r["arm"], []).append(r["event"])
    return per_arm


def store_runs(store: LocalStore) -> list[tuple[Any, ...]]:
    exp = store.list_experiments()[0]
    return sorted(
        (r["name"], r["status"], r["group_name"], json.dumps(r["metrics"], sort_keys=True), r["error_message"])
        for r in store.experiment_runs(exp["id"])
    )


def run_both(tmp_path: Path, **fields: Any) -> list[tuple[ExperimentResult, Path, LocalStore]]:
    outcomes = []
    for label, executor in (("seq", {"kind": "sequential"}), ("ray", RAY)):
        out = tmp_path / label
        store = LocalStore(tmp_path / f"{label}.db")
        result = Experiment(load_yaml(experiment(out, executor, **fields)), store=store).run()
        outcomes.append((result, out, store))
    return outcomes


def test_ray_sweep_matches_sequential(tmp_path: Path, bench_dir: Path, host: PluginHost, ray_local: Any) -> None:
    meta = {"benchmark": {"name": "qa", "path": str(bench_dir)}, "success_metric": "qa.pass_rate"}
    runs = [run("a", lora_rank=2), run("b", lora_rank=8), run("c", num_epochs=1)]
    (seq, seq_out, seq_store), (ray_, ray_out, ray_store) = run_both(tmp_path, runs=runs, n_repeats=2, metadata=meta)
    assert [a.name for a in ray_.arms] == ["a__s42", "a__s43", "b__s42", "b__s43", "c__s42", "c__s43"]
    assert all(a.status == "completed" and a.eval("qa") is not None for a in ray_.arms)
    assert normalized(ray_, ray_out) == normalized(seq, seq_out)
    assert ray_.conclusion == seq.conclusion and ray_.group_stats() == seq.group_stats()
    assert store_runs(ray_store) == store_runs(seq_store)
    assert arm_events(ray_out) == arm_events(seq_out)
    assert ray_local.is_initialized()  # a Ray the process started itself is used, and left up


def test_ray_continual_chains_match_sequential(
    tmp_path: Path, bench_dir: Path, host: PluginHost, ray_local: Any
) -> None:
    stages = [{"source_kind": "in_memory", "rows": tasks()[:4]}, {"source_kind": "in_memory", "rows": tasks()[4:]}]
    fields = {
        "run": {k: v for k, v in run("cl").items() if k != "data"},
        "continual": {"datasets": stages},
        "n_repeats": 2,
        "metadata": {"benchmark": {"name": "qa", "path": str(bench_dir)}},
    }
    (seq, seq_out, seq_store), (ray_, ray_out, ray_store) = run_both(tmp_path, **fields)
    assert [(a.name, a.stage) for a in ray_.arms] == [
        ("cl_stage0__s42", 0),
        ("cl_stage1__s42", 1),
        ("cl_stage0__s43", 0),
        ("cl_stage1__s43", 1),
    ]
    assert normalized(ray_, ray_out) == normalized(seq, seq_out)
    for first, second in ((0, 1), (2, 3)):
        state = ray_.arms[first].run_result.artifacts["state-final"]  # type: ignore[union-attr]
        assert ray_.arms[second].run_config.model.init_from_checkpoint == state
    assert ray_.stage_matrix() == seq.stage_matrix()
    assert store_runs(ray_store) == store_runs(seq_store)


def test_a_crashing_arm_fails_alone_and_resume_skips_the_rest(tmp_path: Path, host: PluginHost, ray_local: Any) -> None:
    cfg = load_yaml(experiment(tmp_path / "out", RAY, runs=[run("a"), run("dies", "crash"), run("b")]))
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
    params = {"driver_pid": os.getpid(), "marker": str(tmp_path / "interrupted-once")}
    one_at_a_time = {**RAY, "params": {**RAY["params"], "max_concurrent": 1}}
    runs = [run("a"), run("stops", "interrupt_once", **params), run("c")]
    cfg = load_yaml(experiment(tmp_path / "out", one_at_a_time, runs=runs))
    store = LocalStore(tmp_path / "db.sqlite")
    with pytest.raises(KeyboardInterrupt):
        Experiment(cfg, store=store).run()
    assert store.list_experiments()[0]["status"] == "cancelled"
    assert [(r[0], r[1]) for r in store_runs(store)] == [("a", "completed"), ("stops", "cancelled")]
    again = Experiment(cfg, store=store, resume=True).run()
    assert [(a.name, a.status, a.resumed) for a in again.arms] == [
        ("a", "completed", True),
        ("stops", "completed", False),
        ("c", "completed", False),
    ]


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
