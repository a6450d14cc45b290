"""`evsys mlflow export` against a real `mlflow server`, read back with the real MLflow client."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient as RealClient

from evsys_sdk.search import evolve
from evsys_sdk.testing import search as search_kit
from evsys_sdk.tracking.store import LocalStore

pytestmark = pytest.mark.timeout(300)


def record(workspace: Path, name: str, *, arms: int, seeds: int, steps: int, metrics: int, out: Path) -> dict:
    """An experiment recorded as `evsys run` records one: groups of seeded runs, step metrics, evals, a baseline."""
    store = LocalStore(workspace / "evsys.db")
    exp = store.create_experiment(experiment_name=name, hypothesis="lr matters", config={"output_dir": str(out)})
    for a in range(arms):
        group = store.create_group(exp["id"], f"arm{a}")
        for s in range(seeds):
            run_name = f"arm{a}_s{s}"
            config = {"name": run_name, "seed": s, "algorithm": {"kind": "mock_sft", "params": {"lr": 10.0**-a}}}
            run = store.create_run(
                experiment_id=exp["id"], group_id=group["id"], name=run_name, seed=s, run_config=config
            )
            rows = [(i, "train", {f"m{k}": a + s + i / steps + k for k in range(metrics)}) for i in range(steps)]
            store.log_metrics_batch(run["id"], rows)
            store.create_eval(run_id=run["id"], metrics={"accuracy": 0.5 + a / 10}, name="gsm8k", step=steps)
            store.update_run(run["id"], status="completed", metrics={"accuracy": 0.5 + a / 10})
            (out / run_name).mkdir(parents=True, exist_ok=True)
            (out / run_name / "run_result.json").write_text(json.dumps({"status": "completed", "run": run_name}))
    base = store.create_run(experiment_id=exp["id"], name="mock-model", recipe_kind="baseline", status="completed")
    store.create_eval(run_id=base["id"], metrics={"accuracy": 0.25}, name="gsm8k")
    store.update_experiment(exp["id"], status="completed", conclusion="arm2 beats arm0", best_score=0.7)
    store.close()
    return exp


def export(workspace: Path, uri: str, name: str, *flags: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "EVSYS_WORKSPACE": str(workspace)}
    cmd = [sys.executable, "-m", "evsys_sdk.cli", "mlflow", "export", name, "--uri", uri, *flags]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_an_experiment_reads_back_whole_from_mlflow(mlflow_uri: str, tmp_path: Path) -> None:
    exp = record(tmp_path / "ws", "lr_sweep", arms=3, seeds=2, steps=50, metrics=2, out=tmp_path / "out")
    proc = export(tmp_path / "ws", mlflow_uri, "lr_sweep")
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    assert "6 arm runs, 607 metric points sent" in stdout

    client = RealClient(tracking_uri=mlflow_uri)
    mexp = client.get_experiment_by_name("lr_sweep")
    runs = client.search_runs([mexp.experiment_id], max_results=100)
    parent = next(r for r in runs if r.data.tags.get("evsys.id") == exp["id"])
    assert parent.data.tags["evsys.conclusion"] == "arm2 beats arm0"
    assert parent.data.metrics["baseline/mock-model/gsm8k/accuracy"] == 0.25
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == [f"arm{a}_s{s}" for a in range(3) for s in range(2)]
    child = children["arm2_s1"]
    assert child.data.tags["evsys.group"] == "arm2" and child.data.tags["evsys.seed"] == "1"
    assert child.data.params["algorithm.params.lr"] == "0.01"
    assert child.data.metrics["eval/gsm8k/accuracy"] == pytest.approx(0.7)
    assert child.info.status == "FINISHED"
    history = client.get_metric_history(child.info.run_id, "m1")
    assert [(m.step, m.value) for m in history] == [(i, 2 + 1 + i / 50 + 1) for i in range(50)]
    assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["run_result.json"]

    again = export(tmp_path / "ws", mlflow_uri, "lr_sweep")
    stdout, stderr = again.communicate(timeout=240)
    assert again.returncode == 0, stderr
    assert "0 metric points sent (607 already there)" in stdout
    assert len(client.get_metric_history(child.info.run_id, "m1")) == 50
    assert len(client.search_runs([mexp.experiment_id], max_results=100)) == 7

    elsewhere = export(tmp_path / "ws", mlflow_uri, "lr_sweep", "--experiment", "lr_sweep_copy")
    stdout, stderr = elsewhere.communicate(timeout=240)
    assert elsewhere.returncode == 0, stderr
    assert "607 metric points sent (0 already there)" in stdout  # another MLflow experiment: its own ledger


def _server_points(client: RealClient, experiment_id: str) -> int:
    total = 0
    for run in client.search_runs([experiment_id], max_results=1000):
        total += sum(len(client.get_metric_history(run.info.run_id, k)) for k in run.data.metrics)
    return total


def _acked(workspace: Path) -> int:
    with contextlib.closing(sqlite3.connect(workspace / "evsys.db", timeout=30)) as db:
        try:
            return int(db.execute("SELECT COALESCE(SUM(acked), 0) FROM mlflow_acks").fetchone()[0])
        except sqlite3.OperationalError:  # the exporter has not made its ledger yet
            return 0


def test_an_export_killed_with_sigkill_resumes_without_a_duplicate(mlflow_uri: str, tmp_path: Path) -> None:
    record(tmp_path / "ws", "killed", arms=2, seeds=2, steps=1500, metrics=2, out=tmp_path / "out")
    expected = 2 * 2 * 1500 * 2 + 2 * 2 + 1  # step points, evals, the baseline
    for threshold in (2000, 7000):  # killed mid-export twice, wherever it then is (a batch in flight or not)
        proc = export(tmp_path / "ws", mlflow_uri, "killed")
        while _acked(tmp_path / "ws") < threshold:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    proc = export(tmp_path / "ws", mlflow_uri, "killed")
    stdout, stderr = proc.communicate(timeout=240)
    assert "0 already there" not in stdout  # the kills left work for the resume
    assert proc.returncode == 0, stderr
    client = RealClient(tracking_uri=mlflow_uri)
    mexp = client.get_experiment_by_name("killed")
    assert len(client.search_runs([mexp.experiment_id], max_results=100)) == 5
    assert _server_points(client, mexp.experiment_id) == expected


def test_an_unknown_experiment_is_one_line(mlflow_uri: str, tmp_path: Path) -> None:
    record(tmp_path / "ws", "known", arms=1, seeds=1, steps=2, metrics=1, out=tmp_path / "out")
    proc = export(tmp_path / "ws", mlflow_uri, "knwon")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert stderr.strip().splitlines() == ["ERROR: no experiment named or with id 'knwon'; did you mean 'known'?"]


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    record(tmp_path / "ws", "known", arms=1, seeds=1, steps=2, metrics=1, out=tmp_path / "out")
    proc = export(tmp_path / "ws", "http://127.0.0.1:9", "known")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    (line,) = stderr.strip().splitlines()
    assert line.startswith("ERROR: MLflow server http://127.0.0.1:9 is unreachable")


def test_a_search_exports_each_candidate_with_its_lineage_and_run_result(
    mlflow_uri: str, tmp_path: Path, plugin_host
) -> None:
    plugin_host.add_plugin(search_kit, "search_kit")
    block = {
        "proposer": {"kind": "mutate"},
        "budget": {"candidates": 3},
        "seed": 0,
        "space": {"algorithm.params.x": {"uniform": [-5, 5]}},
    }
    store = LocalStore(tmp_path / "ws" / "evsys.db")
    result = evolve(search_kit.experiment(tmp_path / "out", block), store=store)
    store.close()
    proc = export(tmp_path / "ws", mlflow_uri, "evo")
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr

    client = RealClient(tracking_uri=mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("evo").experiment_id], max_results=100)
    parent = next(r for r in runs if r.data.tags.get("evsys.id") == result.experiment_id)
    assert parent.data.tags["evsys.kind"] == "search"
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["best.yaml"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    candidates = {c.id: c for c in result.candidates}
    assert {r.data.tags["evsys.candidate"] for r in children} == set(candidates)
    for child in children:
        candidate = candidates[child.data.tags["evsys.candidate"]]
        assert child.data.tags["evsys.parents"] == ",".join(candidate.parents)
        assert child.data.tags["evsys.operator"] == candidate.operator
        (artifact,) = client.list_artifacts(child.info.run_id)
        assert artifact.path == "run_result.json"
        local = Path(client.download_artifacts(child.info.run_id, "run_result.json", str(tmp_path / child.info.run_id)))
        assert json.loads(local.read_text())["status"] == "completed"
