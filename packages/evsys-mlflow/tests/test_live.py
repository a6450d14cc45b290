"""Log store `mlflow`: live logging during training against a real `mlflow server`, read back with the real
MLflow client; a server killed mid-run, then `evsys mlflow export` completing it exactly."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient as RealClient
from mlflow_server import free_port, start_server, stop_server

from evsys_mlflow.export import step_points
from evsys_mlflow.live import MlflowLogStore
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.run.step_metrics import read_step_rows
from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.tracking.store import LocalStore

pytestmark = pytest.mark.timeout(300)


def config(out: Path, uri: str, *, arms: int, steps: int, step_seconds: float = 0.0, **live: Any) -> dict:
    """Arms of mock SFT logging through jsonl (evsys's records) and mlflow (live), side by side."""
    children = [{"kind": "jsonl"}, {"kind": "mlflow", "params": {"uri": uri, **live}}]
    run = {
        "data": {"source_kind": "in_memory", "rows": [{"prompt": "1+1", "completion": "2"}]},
        "model": {"name": "mock-model"},
        "backend": {"kind": "mock"},
    }
    return {
        "name": "live",
        "output_dir": str(out),
        "log_store": {"kind": "multiplex", "params": {"children": children}},
        "runs": [
            {
                **run,
                "name": f"a{a}",
                "algorithm": {
                    "kind": "mock_sft",
                    "params": {"max_steps": steps, "learning_rate": 10.0 ** -(a + 3), "step_seconds": step_seconds},
                },
            }
            for a in range(arms)
        ],
    }


def histories(client: RealClient, experiment: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every run's points (step, value) per metric key, by run name."""
    mexp = client.get_experiment_by_name(experiment)
    out = {}
    for run in client.search_runs([mexp.experiment_id], max_results=100):
        out[run.info.run_name] = {
            k: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k))
            for k in run.data.metrics
        }
    return out


def recorded(store: LocalStore, experiment_id: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """The same, from evsys's records (what `evsys mlflow export` sends)."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run in store.experiment_runs(experiment_id):
        keys = out.setdefault(run["name"], {})
        for p in step_points(store, run["id"]):
            keys.setdefault(p["key"], []).append((p["step"], p["value"]))
    return {name: {k: sorted(v) for k, v in keys.items()} for name, keys in out.items()}


def export(workspace: Path, uri: str) -> str:
    env = {**os.environ, "EVSYS_WORKSPACE": str(workspace)}
    cmd = [sys.executable, "-m", "evsys_sdk.cli", "mlflow", "export", "live", "--uri", uri]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_live_run_reads_back_from_mlflow_and_the_export_then_adds_nothing(mlflow_uri: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ws" / "evsys.db")
    result = Experiment(
        ExperimentConfig.model_validate(config(tmp_path / "out", mlflow_uri, arms=2, steps=1500)), store=store
    ).run()
    assert [a.status for a in result.arms] == ["completed", "completed"]

    client = RealClient(tracking_uri=mlflow_uri)
    mexp = client.get_experiment_by_name("live")
    runs = {r.info.run_name: r for r in client.search_runs([mexp.experiment_id], max_results=100)}
    assert sorted(runs) == ["a0", "a1", "live"]
    parent = runs["live"]
    assert parent.data.tags["evsys.id"] == result.experiment_id
    for name, arm in zip(("a0", "a1"), result.arms, strict=True):
        child = runs[name]
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["evsys.id"] == arm.run_id
        assert child.data.params["algorithm.params.max_steps"] == "1500"  # the run config, as the export sends it
        assert child.data.params["algorithm"] == "mock_sft"  # a hyperparam the algorithm logged
        assert child.data.tags["evsys.artifact.final_checkpoint"].startswith("[checkpoint] ")
    assert histories(client, "live") == {**recorded(store, result.experiment_id), "live": {}}
    assert len(histories(client, "live")["a1"]["train/loss"]) == 1500

    stdout = export(tmp_path / "ws", mlflow_uri)
    assert "2 arm runs, 0 metric points sent (3000 already there)" in stdout
    assert len(client.search_runs([mexp.experiment_id], max_results=100)) == 3
    assert histories(client, "live") == {**recorded(store, result.experiment_id), "live": {}}


def _acked(workspace: Path) -> int:
    if not (workspace / "evsys.db").exists():
        return 0
    with contextlib.closing(sqlite3.connect(workspace / "evsys.db", timeout=30)) as db:
        try:
            return int(db.execute("SELECT COALESCE(SUM(acked), 0) FROM mlflow_acks").fetchone()[0])
        except sqlite3.OperationalError:  # no ledger yet
            return 0


@pytest.mark.timeout(600)  # the server starts twice: a minute each on a loaded machine
def test_a_server_killed_mid_run_leaves_the_run_alone_and_the_export_completes_it_exactly(tmp_path: Path) -> None:
    root = tmp_path / "mlflow"
    root.mkdir()
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "live.yaml"
    cfg.write_text(yaml.safe_dump(config(tmp_path / "out", uri, arms=2, steps=1500, step_seconds=0.002)))
    env = {**os.environ, "EVSYS_WORKSPACE": str(tmp_path / "ws")}
    server = start_server(root, port)
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "evsys_sdk.cli", "run", str(cfg)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while _acked(tmp_path / "ws") < 300:  # the first arm is part-way logged live
            assert run.poll() is None, run.communicate()
            time.sleep(0.05)
    finally:
        stop_server(server, signal.SIGKILL)
    stdout, stderr = run.communicate(timeout=240)
    assert run.returncode == 0, stderr
    assert "2/2 arms completed" in stdout
    warnings = [line for line in stderr.splitlines() if "MLflow live logging" in line]
    assert sorted(w.split("'")[1] for w in warnings) == ["a0", "a1"]  # once per run, and the run went on
    assert all(f"`evsys mlflow export live --uri {uri}` sends the rest" in w for w in warnings)

    server = start_server(root, port)
    try:
        stdout = export(tmp_path / "ws", uri)
        client = RealClient(tracking_uri=uri)
        store = LocalStore(tmp_path / "ws" / "evsys.db")
        experiment = store.find_experiment("live")
        assert experiment is not None
        expected = recorded(store, experiment["id"])
        assert sum(map(len, expected["a0"].values())) == 1500
        assert histories(client, "live") == {**expected, "live": {}}  # every point once: nothing lost, nothing twice
        already = int(re.search(r"\((\d+) already there\)", stdout).group(1))
        assert 300 <= already < 3000  # the live store had sent part of the points, the export the rest
        assert len(client.search_runs([client.get_experiment_by_name("live").experiment_id])) == 3
    finally:
        stop_server(server)


def test_the_records_and_the_live_points_line_up(tmp_path: Path) -> None:
    """What the live store sends is, point for point, what evsys records from the jsonl store (the
    ledger counts positions in that sequence): val/ rows apart, NaN dropped, bools as numbers."""
    from evsys_sdk.builtins.log_stores import JSONLLogStore

    live = MlflowLogStore(uri="http://127.0.0.1:9")  # never started: its points stay queued
    jsonl = JSONLLogStore(log_dir=str(tmp_path / "logs"))
    calls = [
        ({"train/loss": 1.0, "val/qa/pass_rate": 0.5, "lr": 3}, 1),
        ({"train/loss": math.nan, "flag": True, "inf": math.inf}, 2),
        ({"val/qa/pass_rate": 0.75}, 3),
        ({}, 4),
    ]
    for metrics, step in calls:
        live.log_metrics(metrics, step)
        jsonl.log_metrics(metrics, step)
    jsonl.close()
    store = LocalStore(tmp_path / "evsys.db")
    exp = store.create_experiment(experiment_name="x")
    run = store.create_run(experiment_id=exp["id"], name="r")
    store.log_metrics_batch(run["id"], read_step_rows(tmp_path / "logs" / "metrics.jsonl"))
    same = [(p["key"], p["step"], p["value"]) for p in step_points(store, run["id"])]
    assert [(p["key"], p["step"], p["value"]) for p in live._points] == same
    assert same == [
        ("train/loss", 1, 1.0), ("lr", 1, 3.0), ("val/qa/pass_rate", 1, 0.5), ("flag", 2, 1.0),
        ("val/qa/pass_rate", 3, 0.75),
    ]  # fmt: skip
    live.close()
    with pytest.raises(RuntimeError):
        live.log_metrics({"x": 1.0}, 5)


def test_a_hung_server_never_blocks_training_and_a_full_queue_stops_live_logging(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as hung:  # accepts connections (the kernel's backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        uri = f"http://127.0.0.1:{hung.getsockname()[1]}"
        cfg = config(tmp_path / "out", uri, arms=1, steps=3000, max_queue=1000, close_timeout=1, timeout=30)
        store = LocalStore(tmp_path / "ws" / "evsys.db")
        started = time.perf_counter()
        with caplog.at_level(logging.WARNING, logger="evsys"):
            result = Experiment(ExperimentConfig.model_validate(cfg), store=store).run()
        seconds = time.perf_counter() - started
    assert result.arms[0].status == "completed"
    assert seconds < 20  # the request hangs for 30 s: training did not wait for it, the end waited 1 s
    warnings = [r.getMessage() for r in caplog.records if "MLflow live logging" in r.getMessage()]
    assert len(warnings) == 1 and "the server fell behind (1000 points waiting)" in warnings[0]
    assert len(store.step_metrics(result.arms[0].run_id or "")) == 3000  # evsys's own records are whole
    assert json.loads((tmp_path / "out" / "a0" / "run_result.json").read_text())["status"] == "completed"


def test_a_mistake_in_the_live_store_is_found_before_any_arm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evsys_sdk.cli.main import main

    cfg = config(tmp_path / "out", "http://127.0.0.1:9", arms=1, steps=1)
    cfg["log_store"]["params"]["children"][1]["params"] = {"url": "http://127.0.0.1:9"}
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(path), "--no-store"]) == 1
    err = capsys.readouterr().err
    assert "children[1].params.url: unknown field; did you mean 'uri'?" in err
    assert f"{path.name}:" in err and not (tmp_path / "out").exists()
