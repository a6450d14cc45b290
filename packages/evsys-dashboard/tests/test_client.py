"""DashboardClient and ExperimentRun against the real server on loopback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import Server, experiment_config

from evsys_dashboard import DashboardClient, DashboardClientError, EvsysAuthError, ExperimentRun
from evsys_dashboard.client import API_PREFIX


def test_env_vars_arguments_and_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVSYS_API_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("EVSYS_LOG_DIR", str(tmp_path / "from_env"))
    with pytest.raises(EvsysAuthError, match="EVSYS_API_KEY and EVSYS_PROJECT_ID") as err:
        DashboardClient()
    assert "EVSYS_OFFLINE" in str(err.value)
    with pytest.raises(EvsysAuthError, match="needs EVSYS_PROJECT_ID"):
        DashboardClient(api_key="k")
    monkeypatch.setenv("EVSYS_OFFLINE", " Yes ")
    with DashboardClient() as offline:
        assert offline.offline and offline._session is None
        assert offline.base_url == "http://127.0.0.1:9" and offline.log_dir == tmp_path / "from_env"
        assert (tmp_path / "from_env").is_dir()
    with DashboardClient(offline=False, api_key="k", project_id="p", base_url="http://127.0.0.1:1//") as online:
        assert online.base_url == "http://127.0.0.1:1/"[:-1] and online._session is not None
        assert online._session.headers["Authorization"] == "Bearer k"
        assert online._session.headers["Content-Type"] == "application/json"
        assert online._url("/sdk/runs/") == "http://127.0.0.1:1" + API_PREFIX + "/sdk/runs/"


def test_experiment_run_records_everything(server: Server, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    with server.client(mirror) as client:
        with ExperimentRun(
            client, experiment_name="sft_run_v9", hypothesis="rank 8 wins", recipe_kind="sft", run_config={"lr": 1e-5}
        ) as run:
            for step in range(1, 301):
                run.log_step(step, loss=1.0 / step, learning_rate=None, reward=step / 300)
            run.log_step(300, split="val", accuracy=0.5)
            run.log_eval(metrics={"pass_at_1": 0.83}, benchmark_id="bench-1", step=None)
            run.add_checkpoint(uri="file:///ckpt/final", label="final", step=300, is_final=True)
            run.log_predictions([{"prompt": "2+2", "completion": "4"}, {"prompt": "3+3", "completion": "6"}])
            assert run.log_predictions([]) == {"ok": True, "inserted": 0}
            run.set_best_score(0.83)
            run.set_conclusion("rank-8 LoRA wins")
        assert client.flush()
    store = server.db()
    exp = store.find_experiment(run.experiment_id)
    assert exp is not None
    assert (exp["name"], exp["status"], exp["best_score"], exp["conclusion"]) == (
        "sft_run_v9",
        "completed",
        0.83,
        "rank-8 LoRA wins",
    )
    [stored] = store.experiment_runs(run.experiment_id)
    assert stored["id"] == run.run_id and stored["status"] == "completed"
    assert stored["extra"]["summary"] == {"best_score": 0.83}
    train = store.step_metrics(run.run_id, "train")
    assert len(train) == 300 and train[0]["metrics"] == {"loss": 1.0, "reward": 1 / 300}
    assert [r["metrics"] for r in store.step_metrics(run.run_id, "val")] == [{"accuracy": 0.5}]
    [ev] = store.run_evals(run.run_id)
    assert ev["metrics"] == {"pass_at_1": 0.83} and ev["benchmark_id"] == "bench-1"
    with server.http() as http:
        page = http.get(f"/runs/{run.run_id}").text
    assert "file:///ckpt/final" in page and "3+3" in page
    # the mirror holds the same records, in the documented layout
    exp_json = json.loads((mirror / "experiments" / run.experiment_id / "experiment.json").read_text())
    assert exp_json["status"] == "completed" and "_created_at" in exp_json and "_updated_at" in exp_json
    gen = mirror / "generations" / run.run_id
    assert json.loads((gen / "generation.json").read_text())["status"] == "completed"
    assert len((gen / "metrics.jsonl").read_text().splitlines()) == 301
    assert len((gen / "evals.jsonl").read_text().splitlines()) == 1
    assert len((gen / "checkpoints.jsonl").read_text().splitlines()) == 1  # upstream never mirrored these
    assert len((gen / "predictions.jsonl").read_text().splitlines()) == 2


def test_exception_exit_marks_failed_and_joined_runs_leave_the_experiment_alone(server: Server, tmp_path: Path) -> None:
    with server.client(tmp_path / "m") as client:
        with pytest.raises(ValueError, match="boom"), ExperimentRun(client, experiment_name="fails") as run:
            raise ValueError("boom")
        with pytest.raises(KeyError), ExperimentRun(client, experiment_name="bare") as bare:
            raise KeyError()
        campaign = client.create_experiment(experiment_name="campaign")["id"]
        with ExperimentRun(client, experiment_id=campaign, seed=1) as joined:
            joined.log_step(1, loss=0.5)
        with pytest.raises(RuntimeError), ExperimentRun(client, experiment_id=campaign, seed=2):
            raise RuntimeError("thread 2 died")
    store = server.db()
    assert store.find_experiment(run.experiment_id)["status"] == "failed"  # type: ignore[index]
    assert store.experiment_runs(run.experiment_id)[0]["error_message"] == "ValueError: boom"
    assert store.experiment_runs(bare.experiment_id)[0]["error_message"] == "KeyError"
    assert store.find_experiment(campaign)["status"] == "running"  # type: ignore[index]
    assert sorted(r["status"] for r in store.experiment_runs(campaign)) == ["completed", "failed"]
    assert joined.experiment_id == campaign


def test_4xx_raises_with_status_body_and_path(server: Server, tmp_path: Path) -> None:
    with server.client(tmp_path / "m") as client:
        with pytest.raises(DashboardClientError) as err:
            client.update_run("no-such-run", status="completed")
        assert err.value.status == 404 and err.value.path == "/sdk/runs/no-such-run/"
        assert "not found" in err.value.body["error"]
        assert str(err.value).startswith("/sdk/runs/no-such-run/ → HTTP 404: ")
        exp = client.create_experiment(experiment_name="x")
        with pytest.raises(DashboardClientError) as err:
            client.update_experiment(exp["id"], status="exploded")
        assert err.value.status == 422
        assert not client.backend_down  # a refused write is not an outage
    with server.client(tmp_path / "m2", api_key="evsys_wrong") as bad, pytest.raises(DashboardClientError) as err:
        bad.create_experiment(experiment_name="nope")
    assert err.value.status == 401


def test_offline_mirror_then_sync_is_idempotent(server: Server, tmp_path: Path) -> None:
    from evsys_dashboard.sync import sync_mirror

    mirror = tmp_path / "mirror"
    with DashboardClient(offline=True, log_dir=mirror) as client:
        with ExperimentRun(client, experiment_name="offline", recipe_kind="rl") as run:
            for step in range(50):
                run.log_step(step, reward=step / 50)
            run.log_eval(metrics={"acc": 0.5})
            run.add_checkpoint(uri="ckpt://1")
            run.log_predictions([{"p": i} for i in range(3)])
        group = client.create_group(run.experiment_id, "g")
    assert (mirror / "experiments" / run.experiment_id / "groups.jsonl").read_text().count(group["id"]) == 1
    assert server.db().find_experiment(run.experiment_id) is None
    with server.client(mirror) as online:
        first = sync_mirror(online)
        second = sync_mirror(online)
    # experiment, group, run, 50 step rows, eval, checkpoint, 3 predictions
    assert (first.created, first.existing, first.errors) == (58, 0, [])
    assert (second.created, second.existing) == (0, 58)
    store = server.db()
    assert store.find_experiment(run.experiment_id)["status"] == "completed"  # type: ignore[index]
    assert len(store.step_metrics(run.run_id)) == 50 and len(store.run_evals(run.run_id)) == 1
    assert [g["name"] for g in store.experiment_groups(run.experiment_id)] == ["g"]


def test_experiment_end_to_end_with_repeats_and_benchmarks(server: Server, tmp_path: Path, bench_dir: Path) -> None:
    from evsys_sdk.orchestration.experiment import Experiment

    cfg = experiment_config(tmp_path, bench_dir, n_repeats=2)
    with server.client(tmp_path / "mirror") as client:
        result = Experiment(cfg, store=client).run()
    assert result.status == "completed" and len(result.arms) == 4
    store = server.db()
    exp = store.find_experiment(result.experiment_id)  # type: ignore[arg-type]
    assert exp is not None and exp["status"] == "completed" and exp["conclusion"] == result.conclusion
    assert exp["best_score"] == result.best_score
    assert [g["name"] for g in store.experiment_groups(exp["id"])] == ["lr_small", "lr_big"]
    runs = {r["name"]: r for r in store.experiment_runs(exp["id"])}
    assert set(runs) == {a.name for a in result.arms}
    for arm in result.arms:
        stored = runs[arm.name]
        assert stored["status"] == "completed" and stored["group_name"] == arm.group_name
        assert stored["metrics"] == pytest.approx(arm.summary_metrics())
        assert len(store.step_metrics(stored["id"])) > 0
        [ev] = store.run_evals(stored["id"])
        assert ev["name"] == "qa" and ev["metrics"] == pytest.approx(arm.eval_metrics) and ev["breakdowns"]
    with server.http() as http:
        page = http.get(f"/experiments/{exp['id']}").text
    for arm in result.arms:
        assert arm.name in page
    assert page.count("<svg") >= 1 and "Groups (mean ± 95% CI over seeds)" in page


def test_workspace_and_benchmark_upload_go_through_the_client(server: Server, tmp_path: Path, bench_dir: Path) -> None:
    from evsys_sdk.cli.benchmark_upload import upload_benchmark
    from evsys_sdk.tracking.workspace import Workspace

    with server.client(tmp_path / "m") as client:
        first = upload_benchmark(client, bench_dir)
        assert (first.status, first.version, first.n_tasks) == ("created", 1, 8)
        assert upload_benchmark(client, bench_dir).status == "unchanged"
        ws = Workspace(store=client, root=tmp_path / "ws")
        assert ws.benchmark_id_for_name("qa") == first.benchmark_id
        pulled = ws.pull_benchmark(first.benchmark_id)
        assert pulled.n_rows == 8 and not pulled.cached
        assert ws.pull_benchmark(first.benchmark_id).cached
        assert client.get_dataset("missing") is None
        with pytest.raises(FileNotFoundError):
            ws.pull_dataset("missing")


def test_sync_cli_twice_creates_nothing_new(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evsys_sdk.cli.main import main

    mirror = tmp_path / "mirror"
    with DashboardClient(offline=True, log_dir=mirror) as client, ExperimentRun(client, experiment_name="cli") as run:
        run.log_step(1, loss=1.0)
    monkeypatch.setenv("EVSYS_API_URL", server.url)
    monkeypatch.setenv("EVSYS_API_KEY", server.key)
    monkeypatch.setenv("EVSYS_PROJECT_ID", server.project)
    assert main(["dashboard", "sync", str(mirror)]) == 0
    assert "3 records created, 0 already on the server" in capsys.readouterr().out
    assert main(["dashboard", "sync", str(mirror)]) == 0
    assert "0 records created, 3 already on the server" in capsys.readouterr().out
    monkeypatch.setenv("EVSYS_API_URL", "http://127.0.0.1:9")
    assert main(["dashboard", "sync", str(mirror)]) == 1
    assert "unreachable" in capsys.readouterr().err


def test_warnings_name_the_mirror(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="evsys.dashboard")
    with DashboardClient(base_url="http://127.0.0.1:9", api_key="k", project_id="p", log_dir=tmp_path) as client:
        exp = client.create_experiment(experiment_name="x")
        assert client.backend_down and client.queued_requests == 1
    assert (tmp_path / "experiments" / exp["id"] / "experiment.json").exists()
    text = caplog.text
    assert "unavailable" in text and str(tmp_path) in text and "evsys dashboard sync" in text
