"""A TRL trainer reporting to MLflow (``report_to="mlflow"``, transformers' own MLflowCallback) logs into
the dashboard: a tiny offline model (evsys-local builds it), a few SFT steps, and the loss curve is in
evsys's records and on the experiment page."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import mlflow
import pytest
from conftest import PROJECT

from evsys_dashboard.testing import DashboardServer
from evsys_sdk.tracking.store import LocalStore

STEPS = 6


@pytest.mark.timeout(600)
def test_trl_sft_reporting_to_mlflow_shows_its_loss_curve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from evsys_local.testing import make_tiny_model

    for var, value in {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
        monkeypatch.setenv(var, os.environ.get(var, value))
    torch.manual_seed(0)
    model = make_tiny_model(tmp_path / "tiny", layers=1, hidden=32, heads=2, kv_heads=1)
    rows = Dataset.from_list([{"text": f"{a} plus {b} is {a + b}"} for a in range(4) for b in range(4)])
    with DashboardServer(tmp_path / "server.db", project=PROJECT) as server:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{server.url}/mlflow")
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.key)
        monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "trl-sft")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "")  # the callback's set_experiment writes it: restored after
        args = SFTConfig(
            output_dir=str(tmp_path / "out"),
            run_name="tiny-sft",
            report_to="mlflow",
            max_steps=STEPS,
            logging_steps=1,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            max_length=32,
            use_cpu=True,
            bf16=False,
            save_strategy="no",
            dataloader_num_workers=0,
            seed=0,
        )
        SFTTrainer(model=str(model), args=args, train_dataset=rows).train()
        while mlflow.active_run() is not None:
            mlflow.end_run()

        experiment = mlflow.get_experiment_by_name("trl-sft")
        (run,) = mlflow.search_runs([experiment.experiment_id], output_format="list")
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
        with httpx.Client(base_url=server.url, timeout=30) as http:
            page = http.get(f"/experiments/{experiment.experiment_id}").text
        store = LocalStore(server.db_path)
        stored = store.query("SELECT * FROM runs WHERE id = ?", (run.info.run_id,))[0]
        steps = store.query(
            "SELECT step, metrics FROM step_metrics WHERE run_id = ? ORDER BY step, rowid", (run.info.run_id,)
        )

    assert run.info.run_name == "tiny-sft" and run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == "0.001" and run.data.params["max_steps"] == str(STEPS)
    assert [p.step for p in history] == list(range(1, STEPS + 1))
    assert all(p.value > 0 for p in history)
    # evsys's run record: completed, the trainer's arguments as its config, every logged loss a step row
    assert stored["name"] == "tiny-sft" and stored["status"] == "completed"
    assert stored["run_config"]["params"]["per_device_train_batch_size"] == "4"
    losses = [(r["step"], r["metrics"]["loss"]) for r in steps if "loss" in r["metrics"]]
    assert losses == [(p.step, p.value) for p in history]
    assert stored["metrics"]["loss"] == history[-1].value
    assert "train_runtime" in stored["metrics"]  # the trainer's summary, logged at the end
    assert 'aria-label="loss"' in page and "tiny-sft" in page
