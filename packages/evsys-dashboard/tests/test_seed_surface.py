"""The seed-documented dashboard surface: ``evsys_sdk.dashboard_client`` / ``evsys_sdk.constants``, and
recording a scored benchmark on a run (``record_benchmark``, ``ExperimentRun.benchmark``), online and offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Server

import evsys_dashboard
from evsys_dashboard import DashboardClient, ExperimentRun, constants
from evsys_sdk.builtins.mock import MockInference
from evsys_sdk.eval.benchmark import Benchmark


def test_seed_module_paths_resolve_to_this_package() -> None:
    from evsys_sdk import constants as seed_constants
    from evsys_sdk import dashboard_client

    for name in ("DashboardClient", "ExperimentRun", "DashboardClientError", "EvsysAuthError", "API_PREFIX"):
        assert getattr(dashboard_client, name) is getattr(evsys_dashboard, name)
    assert seed_constants.API_PREFIX == "/api/dashboard/api" == dashboard_client.API_PREFIX
    assert (seed_constants.ENV_API_KEY, seed_constants.ENV_OFFLINE) == ("EVSYS_API_KEY", "EVSYS_OFFLINE")
    assert seed_constants.DEFAULT_API_URL is constants.DEFAULT_API_URL
    with pytest.raises(AttributeError, match="module 'evsys_sdk.constants' has no attribute 'NOPE'"):
        _ = seed_constants.NOPE


def recorded_predictions(server: Server, run_id: str | None) -> tuple[list[dict[str, Any]], int]:
    from evsys_dashboard.server.db import ServerDB

    db = ServerDB(server.db_path)
    try:
        return db.predictions(str(run_id))
    finally:
        db.close()


def score_on(bench_dir: Path) -> tuple[Benchmark, MockInference]:
    return Benchmark.from_dir(bench_dir), MockInference(template="a1")  # answers q1 only: 1 of 8 passes


def test_record_benchmark_against_the_server(server: Server, tmp_path: Path, bench_dir: Path) -> None:
    bench, model = score_on(bench_dir)
    score = bench.score(model, breakdown_keys=["half"])
    with server.client(tmp_path / "mirror") as client:
        with ExperimentRun(client, experiment_name="bench") as run:
            record = client.record_benchmark(run.run_id, score, name="qa", benchmark_id="bench-1", tags=["test"])
        assert client.flush()
    store = server.db()
    [ev] = store.run_evals(run.run_id)
    assert ev["id"] == record["id"] and ev["benchmark_id"] == "bench-1" and ev["name"] == "qa"
    assert ev["metrics"]["pass_rate"] == 0.125 and ev["metrics"]["n_tasks"] == 8.0
    assert ev["metrics"]["pass_rate_se"] == pytest.approx(score.stderr["pass_rate"])
    assert ev["breakdowns"]["half"]["low"]["pass_rate"] == 0.25
    predictions, total = recorded_predictions(server, run.run_id)
    assert total == 8
    assert [(p["task_id"], p["model_output"], p["expected"], p["reward"]) for p in predictions][:2] == [
        ("q0", "a1", "a0", 0.0),
        ("q1", "a1", "a1", 1.0),
    ]


def test_experiment_run_benchmark_context_offline(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    with DashboardClient(offline=True, log_dir=mirror) as client, ExperimentRun(client, experiment_name="e") as run:
        with run.benchmark("qa", step=10, breakdown_keys=["half"]) as bench:
            for i in range(4):  # q0 fails, q1..q3 pass
                bench.record(
                    f"q{i}", float(i > 0), model_output=f"a{i}", expected="a1", half="low" if i < 2 else "high"
                )
        with pytest.raises(RuntimeError, match="judge down"), run.benchmark("broken") as broken:
            broken.record("q0", 1.0)
            raise RuntimeError("judge down")
    assert bench.score is not None and bench.score.metrics["pass_rate"] == 0.75
    assert bench.eval is not None and broken.eval is None  # a benchmark that broke off is not recorded
    gen = mirror / "generations" / str(run.run_id)
    [ev] = [json.loads(line) for line in (gen / "evals.jsonl").read_text().splitlines()]
    assert (ev["name"], ev["step"], ev["metrics"]["pass_rate"]) == ("qa", 10, 0.75)
    assert ev["breakdowns"]["half"] == {
        "low": {"n": 2.0, "mean_reward": 0.5, "pass_rate": 0.5},
        "high": {"n": 2.0, "mean_reward": 1.0, "pass_rate": 1.0},
    }
    rows = [json.loads(line) for line in (gen / "predictions.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["reward"], r["benchmark"], r["step"]) for r in rows] == [
        (f"q{i}", float(i > 0), "qa", 10) for i in range(4)
    ]


def test_experiment_run_benchmark_context_against_the_server(server: Server, tmp_path: Path) -> None:
    with server.client(tmp_path / "mirror") as client:
        with ExperimentRun(client, experiment_name="ctx") as run, run.benchmark("qa", benchmark_id="b-2") as bench:
            bench.record("t1", 1.0, model_output="yes", expected="yes")
            bench.record("t2", 0.0, model_output="no", expected="yes")
        assert client.flush()
    [ev] = server.db().run_evals(run.run_id)
    assert ev["id"] == (bench.eval or {})["id"] and ev["metrics"]["pass_rate"] == 0.5
    assert recorded_predictions(server, run.run_id)[1] == 2
