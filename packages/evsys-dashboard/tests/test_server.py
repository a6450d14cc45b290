"""The server: API keys, payload validation (4xx, never 500), OpenAPI, and the web UI."""

from __future__ import annotations

import html
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT, Server, make_key

P = "/api/dashboard/api/sdk"


def _experiment(server: Server, name: str = "e") -> str:
    with server.http() as http:
        resp = http.post(f"{P}/experiments/", json={"experiment_name": name})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["experiment"]["id"])


def _run(server: Server, eid: str, **fields: Any) -> str:
    with server.http() as http:
        resp = http.post(f"{P}/runs/", json={"experiment_id": eid, **fields})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["run"]["id"])


def test_writes_need_a_valid_key_scoped_to_its_project(server: Server) -> None:
    eid = _experiment(server)
    with server.http(key=None) as anon, server.http(key="evsys_not_a_key") as wrong:
        for http in (anon, wrong):
            resp = http.post(f"{P}/experiments/", json={"experiment_name": "x"})
            assert resp.status_code == 401 and "API key" in resp.json()["error"]
            assert resp.headers["www-authenticate"] == "Bearer"
            assert http.get(f"{P}/benchmarks/").status_code == 401
    other = make_key(server.db_path, "proj-b")
    with server.http(key=other) as b:
        assert b.post(f"{P}/experiments/{eid}/", json={"status": "failed"}).status_code == 404
        assert b.post(f"{P}/runs/", json={"experiment_id": eid}).status_code == 404
        # another project's id is not revealed: the create succeeds, stored under an id of proj-b's own
        clash = b.post(f"{P}/experiments/", json={"id": eid, "experiment_name": "steal"})
        assert clash.status_code == 201 and clash.json()["created"] is True
        assert b.post(f"{P}/experiments/{eid}/", json={"status": "failed"}).json() == {"ok": True, "id": eid}
    assert server.db().find_experiment(eid)["status"] == "running"  # type: ignore[index]  # proj-a's untouched
    with server.http() as a:
        resp = a.post(f"{P}/experiments/", json={"experiment_name": "x", "project_id": "proj-b"})
        assert resp.status_code == 403 and PROJECT in resp.json()["error"]


def test_create_key_cli_prints_the_key_last_and_stores_only_a_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evsys_sdk.cli.main import main

    db = tmp_path / "keys.db"
    assert main(["dashboard", "create-key", "--project", "research", "--db", str(db)]) == 0
    key = capsys.readouterr().out.split()[-1]
    assert key.startswith("evsys_") and len(key) > 30
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("keys.db*"))
    assert stored and key.encode() not in stored and key[6:].encode() not in stored
    from evsys_dashboard.server.db import ServerDB

    assert ServerDB(db).check_key(key)[0] == "research"


def test_creates_are_idempotent_by_client_id(server: Server) -> None:
    with server.http() as http:
        body = {"id": "exp-1", "experiment_name": "e"}
        assert http.post(f"{P}/experiments/", json=body).json()["created"] is True
        assert http.post(f"{P}/experiments/", json=body).json()["created"] is False
        run = {"id": "run-1", "experiment_id": "exp-1"}
        assert http.post(f"{P}/runs/", json=run).json()["created"] is True
        assert http.post(f"{P}/runs/", json=run).json()["created"] is False
        rows = {"rows": [{"step": i, "metrics": {"loss": 1.0}, "uid": f"u{i}"} for i in range(3)]}
        assert http.post(f"{P}/runs/run-1/metrics/", json=rows).json()["inserted"] == 3
        assert http.post(f"{P}/runs/run-1/metrics/", json=rows).json() == {"ok": True, "inserted": 0, "duplicates": 3}
        single = {"step": 7, "split": "val", "metrics": {"acc": 0.5}}  # the upstream single-row body
        assert http.post(f"{P}/runs/run-1/metrics/", json=single).json()["inserted"] == 1
        preds = {"predictions": [{"a": 1}, {"a": 2}], "uids": ["p1", "p2"]}
        assert http.post(f"{P}/runs/run-1/predictions/", json=preds).json()["inserted"] == 2
        assert http.post(f"{P}/runs/run-1/predictions/", json=preds).json()["inserted"] == 0
        ev = {"id": "ev-1", "metrics": {"acc": 1.0}}
        assert [http.post(f"{P}/runs/run-1/evals/", json=ev).json()["created"] for _ in range(2)] == [True, False]
    assert len(server.db().step_metrics("run-1")) == 4


MALFORMED: list[tuple[str, str, Any]] = [
    ("experiments/", "not json", None),
    ("experiments/", "[1, 2]", None),
    ("experiments/", "", None),
    ("experiments/", {}, None),
    ("experiments/", {"experiment_name": ""}, None),
    ("experiments/", {"experiment_name": 5}, None),
    ("experiments/", {"experiment_name": "x", "tags": "not-a-list"}, None),
    ("experiments/", {"experiment_name": "x", "id": "../../etc"}, None),
    ("experiments/", {"experiment_name": "x", "config": [1]}, None),
    ("experiments/", {"experiment_name": "bad \ud800 text"}, None),
    ("experiments/{eid}/", {"status": "exploded"}, None),
    ("experiments/{eid}/", {"best_score": "high"}, None),
    ("experiments/{eid}/groups/", {"name": ""}, None),
    ("experiments/{eid}/groups/", {"name": "g", "colour": "red"}, None),
    ("runs/", {"experiment_id": "{eid}", "seed": 2**70}, None),
    ("runs/", {"experiment_id": "{eid}", "status": "meh"}, None),
    ("runs/", {"experiment_id": "no-such-experiment"}, 404),
    ("runs/", {"status": "running"}, None),
    ("runs/{rid}/", {"metrics": [1]}, None),
    ("runs/{rid}/metrics/", {"step": 1}, None),
    ("runs/{rid}/metrics/", {"step": "one", "metrics": {"loss": 1}}, None),
    ("runs/{rid}/metrics/", {"step": 10**30, "metrics": {"loss": 1}}, None),
    ("runs/{rid}/metrics/", {"step": 1, "metrics": {"loss": "low"}}, None),
    ("runs/{rid}/metrics/", {"step": 1, "metrics": {"loss": 1}, "rows": []}, None),
    ("runs/{rid}/metrics/", {"rows": [{"step": 1}]}, None),
    ("runs/{rid}/metrics/", {"rows": "nope"}, None),
    ("runs/no-such-run/metrics/", {"step": 1, "metrics": {"loss": 1.0}}, 404),
    ("runs/{rid}/evals/", {"benchmark_id": "b"}, None),
    ("runs/{rid}/evals/", {"metrics": {"acc": [1]}}, None),
    ("runs/{rid}/checkpoints/", {"uri": ""}, None),
    ("runs/{rid}/checkpoints/", {"label": "final"}, None),
    ("runs/{rid}/predictions/", {"predictions": [1, 2]}, None),
    ("runs/{rid}/predictions/", {"predictions": [{}], "uids": [5]}, None),
    ("benchmarks/", {"name": "b", "version": 0}, None),
    ("benchmarks/no-such/rows/", {"rows": [{"a": 1}]}, 404),
    ("datasets/", {"nom": "d"}, None),
]


@pytest.mark.parametrize(("route", "body", "status"), MALFORMED)
def test_malformed_payloads_get_a_4xx_json_error(server: Server, route: str, body: Any, status: int | None) -> None:
    eid = _experiment(server)
    rid = _run(server, eid)
    url = f"{P}/" + route.format(eid=eid, rid=rid)
    if isinstance(body, dict):
        body = json.loads(json.dumps(body).replace("{eid}", eid))
    content = body if isinstance(body, str) else json.dumps(body)
    with server.http() as http:
        resp = http.post(
            url, content=content.encode("utf-8", "surrogatepass"), headers={"Content-Type": "application/json"}
        )
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    if status is not None:
        assert resp.status_code == status
    assert isinstance(resp.json()["error"], str)


def test_reads_answer_4xx_on_bad_queries(server: Server) -> None:
    with server.http() as http:
        assert http.get(f"{P}/datasets/nope/").status_code == 404
        assert http.get(f"{P}/datasets/nope/rows/").status_code == 404
        assert http.get(f"{P}/benchmarks/x/rows/", params={"limit": -1}).status_code == 422
        assert http.get("/no/such/page").status_code == 404
        assert http.get("/experiments/nope").status_code == 404
        assert http.get("/runs/nope").json()["error"] == "run nope not found"


def test_openapi_lists_every_sdk_route(server: Server) -> None:
    with server.http(key=None) as http:
        spec = http.get("/openapi.json").json()
    paths = set(spec["paths"])
    for route in (
        "experiments/",
        "experiments/{experiment_id}/",
        "experiments/{experiment_id}/groups/",
        "runs/",
        "runs/{run_id}/",
        "runs/{run_id}/metrics/",
        "runs/{run_id}/evals/",
        "runs/{run_id}/checkpoints/",
        "runs/{run_id}/predictions/",
        "datasets/{record_id}/rows/",
        "benchmarks/",
    ):
        assert f"{P}/{route}" in paths
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_ui_escapes_user_text_and_forbids_scripts(server: Server) -> None:
    evil = "<script>alert('x')</script>"
    with server.http() as http:
        eid = http.post(f"{P}/experiments/", json={"experiment_name": f"exp {evil}", "hypothesis": f"h {evil}"}).json()[
            "experiment"
        ]["id"]
        rid = _run(server, eid, name=f"run {evil}", group_id=None)
        http.post(f"{P}/runs/{rid}/", json={"status": "failed", "error_message": evil})
        http.post(f"{P}/runs/{rid}/metrics/", json={"step": 1, "metrics": {evil: 1.0}})
        http.post(
            f"{P}/runs/{rid}/evals/", json={"metrics": {"acc": 1.0}, "name": evil, "breakdowns": {evil: {evil: 1}}}
        )
        http.post(f"{P}/runs/{rid}/checkpoints/", json={"uri": evil})
        http.post(f"{P}/runs/{rid}/predictions/", json={"predictions": [{evil: evil}]})
        pages = [http.get(path) for path in ("/", f"/experiments/{eid}", f"/runs/{rid}")]
    for resp in pages:
        assert resp.status_code == 200
        assert "<script" not in resp.text.lower()
        assert "&lt;script&gt;" in resp.text
        assert "script-src" not in resp.headers["content-security-policy"]  # default-src 'none' forbids scripts
        assert resp.headers["content-security-policy"].startswith("default-src 'none'")


def test_ui_shows_what_evsys_run_recorded_locally(server: Server, tmp_path: Path, bench_dir: Path) -> None:
    from conftest import experiment_config

    from evsys_sdk.orchestration.experiment import Experiment
    from evsys_sdk.tracking.store import LocalStore

    result = Experiment(experiment_config(tmp_path, bench_dir, n_repeats=2), store=LocalStore(server.db_path)).run()
    with server.http(key=None) as http:
        index = http.get("/").text
        page = http.get(f"/experiments/{result.experiment_id}").text
        arm = result.arms[0]
        arm_page = http.get(f"/runs/{arm.run_id}").text
    assert "dash_exp" in index and "local" in index
    assert "a bigger learning rate &lt;b&gt;wins&lt;/b&gt;" in page and html.escape(result.conclusion) in page
    assert page.count('class="series ') >= 4  # one curve per arm on shared axes
    assert re.search(r"qa/pass_rate: [0-9.]+ ± [0-9.]+ \(n=2\)", page)  # group mean +- 95% CI over seeds
    assert "pass_rate" in arm_page and "by half" in arm_page and "final" in arm_page


def test_server_never_answers_500_on_storage_errors(server: Server) -> None:
    eid = _experiment(server)
    with sqlite3.connect(server.db_path) as db:
        db.execute("INSERT INTO groups VALUES ('g-taken', ?, 'x', 0)", (eid,))
    other = _experiment(server, "other")
    with server.http() as http:
        resp = http.post(f"{P}/experiments/{other}/groups/", json={"id": "g-taken", "name": "y"})
    assert resp.status_code == 409
