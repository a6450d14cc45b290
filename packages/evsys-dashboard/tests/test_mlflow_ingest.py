"""The unmodified MLflow client (mlflow-skinny) logging into the real dashboard server on loopback: what it
reads back through MLflow's API, and what evsys's records and pages then hold."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow  # mlflow-skinny, in the [test] extra
import pytest
from conftest import PROJECT
from mlflow.exceptions import MlflowException
from test_hostile import _raw_request

from evsys_dashboard.testing import DashboardServer, create_key
from evsys_sdk.tracking.store import LocalStore

pytestmark = pytest.mark.timeout(240)
API = "/mlflow/api/2.0/mlflow"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    with DashboardServer(tmp_path_factory.mktemp("mlflow") / "server.db", project=PROJECT) as server:
        yield server


@pytest.fixture
def server(dashboard: DashboardServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[DashboardServer]:
    """MLflow pointed at the dashboard the way a user points it: the tracking URI and a key as token."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{dashboard.url}/mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", dashboard.key)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a refusal fails at once, never after backoff
    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.setenv(var, "")  # set_experiment writes MLFLOW_EXPERIMENT_ID: restored after the test
        monkeypatch.delenv(var)
    mlflow.set_tracking_uri(f"{dashboard.url}/mlflow")
    yield dashboard
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # back to the environment's (MLflow's own way to unset it)


def _db(server: DashboardServer) -> LocalStore:
    return LocalStore(server.db_path)


def _points(store: LocalStore, run_id: str, key: str) -> list[tuple[int, float]]:
    rows = store.query("SELECT step, metrics FROM step_metrics WHERE run_id = ? ORDER BY step, rowid", (run_id,))
    return [(r["step"], r["metrics"][key]) for r in rows if key in r["metrics"]]


def _mlflow_error(call: Any) -> MlflowException:
    with pytest.raises(MlflowException) as caught:
        call()
    return caught.value


def test_client_session_lands_in_evsys_records_and_pages(server: DashboardServer, tmp_path: Path) -> None:
    experiment_id = mlflow.set_experiment("mlflow-sft").experiment_id
    notes = tmp_path / "notes.txt"
    notes.write_text("lr 0.1 diverged twice\n")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"batch_size": 8, "optimizer": "adamw"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"accuracy": 0.75, "grad_norm": float("nan")}, step=5)
        mlflow.set_tag("stage", "warmup")
        mlflow.log_artifact(str(notes))
        mlflow.log_dict({"layers": [1, 2, 3]}, "config/model.json")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("loss", 0.5, step=1)
            mlflow.log_metric("loss", 0.25, step=2)

    client = mlflow.MlflowClient()
    run = client.get_run(parent.info.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "parent"
    assert run.info.experiment_id == experiment_id
    assert run.data.params == {"lr": "0.1", "batch_size": "8", "optimizer": "adamw"}
    assert run.data.metrics["loss"] == pytest.approx(0.2) and run.data.metrics["accuracy"] == 0.75
    assert run.data.metrics["grad_norm"] != run.data.metrics["grad_norm"]  # NaN round-trips
    assert run.data.tags["stage"] == "warmup"
    history = client.get_metric_history(parent.info.run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert all(p.timestamp > 1.6e12 for p in history)
    assert mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/config/model.json") == {"layers": [1, 2, 3]}
    assert [(f.path, f.is_dir) for f in client.list_artifacts(parent.info.run_id)] == [
        ("config", True),
        ("notes.txt", False),
    ]
    download = Path(client.download_artifacts(parent.info.run_id, "notes.txt", str(tmp_path / "down")))
    assert download.read_text() == notes.read_text()

    found = mlflow.search_runs(experiment_names=["mlflow-sft"], output_format="list")
    assert {r.info.run_name for r in found} == {"parent", "child"}
    children = mlflow.search_runs(
        [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", output_format="list"
    )
    assert [r.info.run_id for r in children] == [child.info.run_id]
    low = mlflow.search_runs(
        [experiment_id], filter_string="metrics.loss < 0.3 AND params.lr = '0.1'", output_format="list"
    )
    assert [r.info.run_id for r in low] == [parent.info.run_id]
    ordered = mlflow.search_runs([experiment_id], order_by=["metrics.loss DESC"], output_format="list")
    assert [r.info.run_name for r in ordered] == ["child", "parent"]  # latest loss 0.25 vs 0.2

    # evsys's records: the experiment of the key's project, a run per MLflow run, every point a step row
    store = _db(server)
    exp = store.query(
        "SELECT e.*, p.project_id FROM experiments e JOIN dash_experiment_projects p ON p.experiment_id = e.id"
        " WHERE e.id = ?",
        (experiment_id,),
    )
    assert exp and exp[0]["name"] == "mlflow-sft" and exp[0]["project_id"] == PROJECT
    runs = {r["name"]: r for r in store.query("SELECT * FROM runs WHERE experiment_id = ?", (experiment_id,))}
    assert set(runs) == {"parent", "child"}
    stored = runs["parent"]
    assert stored["id"] == parent.info.run_id and stored["status"] == "completed"
    assert stored["run_config"] == {"params": {"lr": "0.1", "batch_size": "8", "optimizer": "adamw"}}
    assert stored["metrics"]["loss"] == pytest.approx(0.2) and stored["metrics"]["accuracy"] == 0.75
    assert runs["child"]["extra"]["mlflow"]["tags"]["mlflow.parentRunId"] == parent.info.run_id
    assert _points(store, parent.info.run_id, "loss") == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert _points(store, child.info.run_id, "loss") == [(1, 0.5), (2, 0.25)]
    artifacts = store.query("SELECT path, size FROM dash_artifacts WHERE run_id = ? ORDER BY path", (stored["id"],))
    assert [(a["path"], a["size"]) for a in artifacts] == [
        ("config/model.json", len(json.dumps({"layers": [1, 2, 3]}, indent=2))),
        ("notes.txt", len(notes.read_bytes())),
    ]

    # the dashboard's pages show them: the arms with their latest metrics, the loss curves, the artifacts
    with httpx.Client(base_url=server.url, timeout=30) as http:
        page = http.get(f"/experiments/{experiment_id}").text
        run_page = http.get(f"/runs/{parent.info.run_id}").text
    assert "mlflow-sft" in page and ">parent<" in page and ">child<" in page
    assert 'aria-label="loss"' in page  # one chart, both runs' curves
    assert len(re.findall(r'<polyline class="series', page)) >= 2
    assert "notes.txt" in run_page and "config/model.json" in run_page
    assert "adamw" in run_page and "warmup" in run_page


def test_default_experiment_is_each_projects_own(server: DashboardServer) -> None:
    with mlflow.start_run(experiment_id="0") as run:
        mlflow.log_metric("m", 1.0)
    assert run.info.experiment_id == "0"
    assert mlflow.get_experiment("0").name == "Default"
    assert mlflow.get_experiment_by_name("Default").experiment_id == "0"
    other = create_key(server.db_path, "proj-other")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {other}"}, timeout=30) as http:
        theirs = http.post(f"{API}/runs/search", json={"experiment_ids": ["0"]}).json()
        assert theirs == {"runs": []}  # their Default, empty; ours holds the run
        answer = http.get(f"{API}/runs/get", params={"run_id": run.info.run_id})
    assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    store = _db(server)
    owners = store.query(
        "SELECT p.project_id FROM experiments e JOIN dash_experiment_projects p ON p.experiment_id = e.id"
        " WHERE e.name = 'Default' ORDER BY p.project_id"
    )
    assert [o["project_id"] for o in owners] == [PROJECT, "proj-other"]


def test_wrong_or_missing_key_is_refused(server: DashboardServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "evsys_not-a-key")
    error = _mlflow_error(lambda: mlflow.set_experiment("refused"))
    assert error.error_code == "UNAUTHENTICATED" and "invalid API key" in error.message
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    error = _mlflow_error(lambda: mlflow.set_experiment("refused"))
    assert error.error_code == "UNAUTHENTICATED" and "missing API key" in error.message
    # refused from the headers, in MLflow's words: a body announced at 200 MB is never read
    port = int(server.url.rsplit(":", 1)[1])
    head = f"POST {API}/runs/log-batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {200 << 20}\r\n"
    assert _raw_request(port, head, b"{")[1]["error_code"] == "UNAUTHENTICATED"
    keyed = head.replace("Host:", f"Authorization: Bearer {server.key}\r\nHost:")
    assert _raw_request(port, keyed, b"{") == (
        413,
        {
            "error_code": "REQUEST_LIMIT_EXCEEDED",
            "message": f"request body of {200 << 20} bytes is over the limit of 16777216 bytes (serve --max-body-mb)",
        },
    )
    with httpx.Client(base_url=server.url, timeout=30) as http:
        put = http.put(f"{API}-artifacts/artifacts/0/r/artifacts/x.txt", content=b"x")
    assert put.status_code == 401 and put.headers["www-authenticate"] == "Bearer"
    assert _db(server).query("SELECT id FROM experiments WHERE name = 'refused'") == []


def test_refusals_in_mlflows_words(server: DashboardServer) -> None:
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment("refusals")
    error = _mlflow_error(lambda: client.create_experiment("refusals"))
    assert error.error_code == "RESOURCE_ALREADY_EXISTS"
    assert _mlflow_error(lambda: client.get_run("0123abcd")).error_code == "RESOURCE_DOES_NOT_EXIST"
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "lr", "0.1")
    client.log_param(run.info.run_id, "lr", "0.1")  # the same value again is fine
    error = _mlflow_error(lambda: client.log_param(run.info.run_id, "lr", "0.2"))
    assert error.error_code == "INVALID_PARAMETER_VALUE" and "Changing param values is not allowed" in error.message
    error = _mlflow_error(lambda: client.search_runs([experiment_id], "metrics.loss ~ 1"))
    assert error.error_code == "INVALID_PARAMETER_VALUE" and "filter" in error.message
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=30) as http:
        answers = {
            "bad name": http.post(
                f"{API}/runs/log-metric", json={"run_id": run.info.run_id, "key": "a/../b", "value": 1, "timestamp": 1}
            ),
            "over 1000 metrics": http.post(
                f"{API}/runs/log-batch",
                json={
                    "run_id": run.info.run_id,
                    "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)],
                },
            ),
            "string step": http.post(
                f"{API}/runs/log-metric",
                json={"run_id": run.info.run_id, "key": "m", "value": 1, "timestamp": 1, "step": "one"},
            ),
            "no endpoint": http.get(f"{API}/registered-models/list"),
            "newline": http.get(f"{API}/runs/%0Aget"),
            "traversal": http.put(
                f"{API}-artifacts/artifacts/{experiment_id}/{run.info.run_id}/artifacts/a/%2E%2E/x", content=b"x"
            ),
        }
        wrong_method = http.delete(f"{API}/runs/create")
    codes = {name: (a.status_code, a.json()["error_code"]) for name, a in answers.items()}
    assert codes == {
        "bad name": (400, "INVALID_PARAMETER_VALUE"),
        "over 1000 metrics": (400, "INVALID_PARAMETER_VALUE"),
        "string step": (400, "INVALID_PARAMETER_VALUE"),
        "no endpoint": (404, "ENDPOINT_NOT_FOUND"),
        "newline": (404, "ENDPOINT_NOT_FOUND"),
        "traversal": (400, "INVALID_PARAMETER_VALUE"),
    }
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    # a refused batch wrote nothing
    assert _points(_db(server), run.info.run_id, "m") == []


def test_search_pages_and_orders(server: DashboardServer) -> None:
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment("sweep")
    ids = {}
    for i, lr in enumerate([0.3, 0.1, 0.2, 0.5, 0.4]):
        run = client.create_run(experiment_id, run_name=f"lr{lr}", start_time=1_700_000_000_000 + i)
        client.log_batch(
            run.info.run_id,
            metrics=[mlflow.entities.Metric("score", lr * 10, 1_700_000_000_000, step) for step in range(3)],
            params=[mlflow.entities.Param("lr", str(lr))],
        )
        ids[lr] = run.info.run_id
    pages = []
    token = None
    while True:
        page = client.search_runs([experiment_id], order_by=["metrics.score DESC"], max_results=2, page_token=token)
        pages.append([r.info.run_name for r in page])
        token = page.token
        if not token:
            break
    assert pages == [["lr0.5", "lr0.4"], ["lr0.3", "lr0.2"], ["lr0.1"]]
    newest = client.search_runs([experiment_id], filter_string="attributes.run_name LIKE 'lr0.%'")
    assert [r.info.run_name for r in newest] == ["lr0.4", "lr0.5", "lr0.2", "lr0.1", "lr0.3"]  # start_time DESC
    picked = client.search_runs(
        [experiment_id], filter_string=f"attributes.run_id IN ('{ids[0.1]}', '{ids[0.2]}') AND metrics.score >= 2"
    )
    assert [r.info.run_name for r in picked] == ["lr0.2"]
    # every point of every step is in evsys's step rows, the latest the run's metric
    store = _db(server)
    assert _points(store, ids[0.5], "score") == [(0, 5.0), (1, 5.0), (2, 5.0)]
    assert client.get_run(ids[0.5]).data.metrics == {"score": 5.0}
